"""The input pipeline the trainer builds from the tasks: deterministic per seed, restartable
at any step, packed or not, and sharded across hosts without overlap."""

import collections

import numpy as np
import pytest
import seqio
import tensorflow as tf

from prosocial_jax.training.input_pipeline import train_batches

LENGTHS = {"inputs": 64, "targets": 32}


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def same(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name,pack", [("canary_mixture", True), ("daily_dialog_canary", False)])
def test_same_seed_same_batches_and_restart_at_any_step(use_synthetic, name, pack):
  first = take(train_batches(name, LENGTHS, 8, seed=5, pack=pack), 6)
  # A job restarted at step 4 (same seed) sees exactly batches 4, 5, ... of the uninterrupted run.
  resumed = take(train_batches(name, LENGTHS, 8, seed=5, pack=pack, start_step=4), 2)
  assert same(resumed[0], first[4]) and same(resumed[1], first[5])
  assert ("encoder_segment_ids" in first[0]) == pack
  if pack:  # another seed, other batches
    other = take(train_batches(name, LENGTHS, 8, seed=6, pack=pack), 6)
    assert not any(same(a, b) for a, b in zip(first, other))


def _examples(rows, packed):
  """(inputs, targets) token tuples of every example in feature-converted rows."""
  out = []
  for row in rows:
    enc, dec = row["encoder_input_tokens"], row["decoder_target_tokens"]
    if not packed:
      out.append((tuple(enc[enc > 0]), tuple(dec[dec > 0])))
      continue
    enc_ids, dec_ids = row["encoder_segment_ids"], row["decoder_segment_ids"]
    out += [(tuple(enc[enc_ids == s]), tuple(dec[dec_ids == s])) for s in np.unique(enc_ids[enc_ids > 0])]
  return out


def test_packing_keeps_every_example_whole(use_synthetic):
  def rows(pack):
    return list(seqio.get_dataset(
        "daily_dialog_canary", task_feature_lengths={"inputs": 256, "targets": 8},
        dataset_split="validation", shuffle=False, num_epochs=1,
        feature_converter=seqio.EncDecFeatureConverter(pack=pack)).as_numpy_iterator())

  unpacked, packed = rows(False), rows(True)
  assert collections.Counter(_examples(packed, True)) == collections.Counter(_examples(unpacked, False))
  assert len(packed) < len(unpacked) / 2  # several examples share a row
  assert packed[0]["encoder_segment_ids"].max() >= 2 and packed[0]["encoder_positions"][0] == 0


def test_sources_shard_without_overlap_and_reshuffle_each_epoch(use_synthetic):
  source = seqio.get_mixture_or_task("prosocial_dialog_canary").source
  contexts = lambda ds: [ex["context"] for ex in ds.as_numpy_iterator()]
  everything = contexts(source.get_dataset("train", shuffle=False))
  shards = [contexts(source.get_dataset("train", shuffle=False,
                                        shard_info=seqio.ShardInfo(index=i, num_shards=2)))
            for i in range(2)]
  assert sorted(shards[0] + shards[1]) == sorted(everything) and not set(shards[0]) & set(shards[1])
  n = len(everything)
  with source.repeating(2):
    two_epochs = contexts(source.get_dataset("train", shuffle=True, seed=1))
    assert contexts(source.get_dataset("train", shuffle=True, seed=1)) == two_epochs
    assert contexts(source.get_dataset("train", shuffle=True, seed=2)) != two_epochs
  assert len(two_epochs) == 2 * n
  assert two_epochs[:n] != two_epochs[n:] and sorted(two_epochs[:n]) == sorted(everything)
  assert sorted(two_epochs[n:]) == sorted(everything)
  assert len(contexts(source.get_dataset("train", shuffle=True, seed=1))) == n  # one epoch


def test_the_input_iterator_can_be_checkpointed(use_synthetic, tmp_path):
  """The O(1) alternative to skipping: save the tf.data iterator with a checkpoint."""
  def iterator():
    return iter(seqio.get_dataset("canary_mixture", task_feature_lengths=LENGTHS, dataset_split="train",
                                  shuffle=True, seed=5, num_epochs=None, batch_size=8,
                                  feature_converter=seqio.EncDecFeatureConverter(pack=True)))

  it = iterator()
  take(it, 3)
  path = tf.train.Checkpoint(iterator=it).write(str(tmp_path / "input"))
  expected = take(it, 2)
  restored = iterator()
  tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
  assert all(same({k: v.numpy() for k, v in a.items()}, {k: v.numpy() for k, v in b.items()})
             for a, b in zip(expected, take(restored, 2)))
