"""SeqIO datasets → per-host numpy batches → global jax.Arrays on the mesh.

Resuming: the training stream is a pure function of (task, feature lengths,
batch size, seed); the batch consumed at step s is element s of that stream.
Two ways back to it, both exact:
* `InputIterator.save` / `restore`: the tf.data iterator's own position, saved
  with every checkpoint (constant time; what the trainer does);
* `start_step`: rebuild the stream and skip s batches (recomputes their
  preprocessing — minutes per thousand steps — used for checkpoints that carry
  no iterator state, e.g. ones written by another tool).
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np
import seqio
import tensorflow as tf


def configure_tensorflow() -> None:
  """Keeps TF (used only for input pipelines) off accelerators and quiet."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  try:
    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")
  except (RuntimeError, ValueError):
    pass  # Devices already initialised, or no such device type: nothing to hide.


def _shard_info() -> seqio.ShardInfo | None:
  if jax.process_count() == 1:
    return None
  return seqio.ShardInfo(index=jax.process_index(), num_shards=jax.process_count())


def per_host_batch_size(global_batch_size: int) -> int:
  hosts = jax.process_count()
  if global_batch_size % hosts:
    raise ValueError(f"BATCH_SIZE={global_batch_size} is not divisible by the "
                     f"number of hosts ({hosts}).")
  return global_batch_size // hosts


class InputIterator:
  """This host's batches as numpy arrays, with a checkpointable position."""

  def __init__(self, dataset: tf.data.Dataset):
    self._iterator = iter(dataset)

  def __iter__(self) -> "InputIterator":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in next(self._iterator).items()}

  def save(self, prefix: str) -> None:
    """Writes the iterator's position (tf.train.Checkpoint files `<prefix>.*`)."""
    tf.train.Checkpoint(iterator=self._iterator).write(prefix)

  def restore(self, prefix: str) -> None:
    """Moves a freshly built, identical pipeline to the saved position."""
    tf.train.Checkpoint(iterator=self._iterator).read(prefix).assert_consumed()


def train_batches(mixture_or_task_name: str,
                  task_feature_lengths: Mapping[str, int],
                  global_batch_size: int,
                  *,
                  seed: int = 0,
                  pack: bool = False,
                  start_step: int = 0,
                  split: str = "train",
                  use_cached: bool = False) -> InputIterator:
  """Infinite, shuffled, deterministic stream of this host's share of each batch."""
  dataset = seqio.get_dataset(
      mixture_or_task_name,
      task_feature_lengths=dict(task_feature_lengths),
      feature_converter=seqio.EncDecFeatureConverter(pack=pack),
      dataset_split=split,
      use_cached=use_cached,
      shuffle=True,
      num_epochs=None,
      shard_info=_shard_info(),
      seed=seed,
      batch_size=per_host_batch_size(global_batch_size),
      verbose=False,
  )
  if start_step:
    dataset = dataset.skip(start_step)
  return InputIterator(dataset.prefetch(tf.data.AUTOTUNE))


def to_global_arrays(host_batch: Mapping[str, np.ndarray], sharding) -> dict[str, jax.Array]:
  """Assembles each host's rows into one global array split over the batch axes."""
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in host_batch.items()}
