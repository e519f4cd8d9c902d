"""A SeqIO DataSource over examples built in memory from the raw files.

Why not `seqio.FunctionDataSource`: it refuses multi-host sharding, and a
dataset of examples in file order (a dialogue's turns side by side) is poorly
mixed by a 1000-example shuffle buffer. This source

* reads the files when a dataset is built (so the data root and vocabulary can
  be chosen after `import tasks`), and builds the examples in memory;
* shards by example (host i of n takes examples i, i+n, ...), so every host gets
  its share without coordination;
* shuffles the whole split with the given seed, afresh every epoch, and repeats
  itself: epoch e's order is a pure function of (seed, e), computed with
  stateless random ops. Each raw example gives exactly one task example, so
  SeqIO's own shuffle buffer is not needed (the tasks have none: the first batch
  comes without first tokenizing a 1000-example buffer per task).

Why the source repeats instead of SeqIO: a `shuffle(reshuffle_each_iteration=True)`
under SeqIO's `repeat()` draws each epoch's seed from a seed generator whose
progress a tf.data iterator checkpoint loses whenever the shuffle's own iterator
has already run dry at save time (a batched gather or a prefetching map reads
ahead to the end of the epoch): the restored run then repeats an early epoch's
order from the next epoch on (issue 17). Here the only state is two counters
(epoch, position) that tf.data checkpoints exactly. `EpochTask` hands the
source the number of epochs SeqIO was asked for.

The same (split, seed, shard) always gives the same order, which is what makes
a restarted input pipeline repeatable (see docs/data.md).
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import seqio
import tensorflow as tf

ExamplesFn = Callable[[str], Sequence[Mapping[str, Any]]]
_GATHER_BATCH = 256


def epoch_order(shard_size: int, seed: int, epoch) -> tf.Tensor:
  """Positions 0..shard_size-1 in epoch `epoch`'s order: a pure function of (seed, epoch)."""
  keys = tf.random.stateless_uniform([shard_size], seed=tf.stack(
      [tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)]), alg="philox")
  return tf.argsort(keys, stable=True)


def example_columns(examples: Sequence[Mapping[str, Any]],
                    dtypes: Mapping[str, tf.dtypes.DType]) -> dict[str, tf.Tensor]:
  """One tensor per feature, holding that feature of every example."""
  return {key: tf.constant([ex[key] for ex in examples], dtype=dtype, shape=[len(examples)])
          for key, dtype in dtypes.items()}


def fingerprint(columns: Mapping[str, np.ndarray]) -> str:
  """sha256 of a split's examples (every column, in file order)."""
  digest = hashlib.sha256()
  for name in sorted(columns):
    digest.update(name.encode())
    for value in columns[name]:
      digest.update(len(value).to_bytes(8, "little"))
      digest.update(value)
  return digest.hexdigest()


class ExamplesSource(seqio.DataSource):
  """Examples of a split from `examples_fn(split)`, as string features `columns`."""

  def __init__(self, examples_fn: ExamplesFn, columns: Sequence[str], splits: Sequence[str]):
    # The whole split is shuffled here, so the Task needs no shuffle buffer of its own
    # (registration.py passes shuffle_buffer_size=None): no buffer to fill before the
    # first batch.
    super().__init__(splits=splits, performs_internal_shuffling=True)
    self._examples_fn = examples_fn
    self._columns = tuple(columns)
    self._epochs: int | None = 1
    # {split: {"examples": n, "sha256": ...}} of the last dataset built: what a
    # checkpoint records, so a resume onto changed data is noticed.
    self.built: dict[str, dict[str, Any]] = {}

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def list_shards(self, split: str) -> Sequence[str]:
    return [split]

  def examples(self, split: str) -> Sequence[Mapping[str, Any]]:
    """The split's examples in file order (reads the files)."""
    return self._examples_fn(split)

  @contextlib.contextmanager
  def repeating(self, num_epochs: int | None) -> Iterator[None]:
    """Datasets built inside repeat `num_epochs` times (None: forever), reshuffling each."""
    previous, self._epochs = self._epochs, num_epochs
    try:
      yield
    finally:
      self._epochs = previous

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                  shard_info: seqio.ShardInfo | None = None, *, sequence_length=None,
                  use_cached: bool = False, num_epochs: int | None = 1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs  # Epochs come from `repeating`.
    examples = self.examples(split)
    columns = example_columns(examples, {c: tf.string for c in self._columns})
    self.built[split] = {"examples": len(examples),
                         "sha256": fingerprint({k: v.numpy() for k, v in columns.items()})}
    shard = np.arange(len(examples), dtype=np.int64)
    if shard_info and shard_info.num_shards > 1:
      shard = shard[shard_info.index::shard_info.num_shards]
    shard = tf.constant(shard, tf.int64)
    size = int(shard.shape[0])
    if seed is None:  # SeqIO's meaning: a different order on every build.
      seed = int(np.random.default_rng().integers(2**31))
    epochs = (tf.data.Dataset.counter() if self._epochs is None
              else tf.data.Dataset.range(self._epochs))
    if shuffle:
      indices = epochs.flat_map(lambda e: tf.data.Dataset.from_tensor_slices(
          tf.gather(shard, epoch_order(size, seed, e))))
    else:
      indices = epochs.flat_map(lambda e: tf.data.Dataset.from_tensor_slices(shard))
    # Gathering a batch of indices at a time is ~6x faster than one by one.
    return (indices.batch(_GATHER_BATCH)
            .map(lambda i: {k: tf.gather(v, i) for k, v in columns.items()},
                 num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch())


class EpochTask(seqio.Task):
  """A Task whose ExamplesSource does the repeating (see the module docstring)."""

  def get_dataset(self, sequence_length=None, split="train", use_cached=False, shuffle=True,
                  shuffle_buffer_size=None, seed=None, shard_info=None, num_epochs=1,
                  **kwargs) -> tf.data.Dataset:
    if use_cached or not isinstance(self.source, ExamplesSource):
      return super().get_dataset(sequence_length, split, use_cached, shuffle,
                                 shuffle_buffer_size, seed, shard_info, num_epochs, **kwargs)
    with self.source.repeating(num_epochs):
      return super().get_dataset(sequence_length, split, use_cached, shuffle,
                                 shuffle_buffer_size, seed, shard_info, 1, **kwargs)
