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

import functools
import os
from typing import Mapping

import jax
import numpy as np
import seqio
import tensorflow as tf
from jax.experimental import multihost_utils


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


@functools.lru_cache(maxsize=None)
def _rows_on_this_process(sharding, global_shape: tuple[int, ...]) -> int:
  """How many distinct rows of a [batch, ...] array this process's devices hold."""
  indices = sharding.devices_indices_map(global_shape)
  blocks = {indices[device][0].indices(global_shape[0])
            for device in sharding.addressable_devices}
  return sum(len(range(*block)) for block in blocks)


def to_global_arrays(host_batch: Mapping[str, np.ndarray], sharding) -> dict[str, jax.Array]:
  """Assembles every host's rows (its own shard of the data) into global arrays.

  The global batch is host 0's rows, then host 1's, and so on. When each
  process's devices hold rows that no other process holds (the batch axes split
  over the hosts: the usual mesh), each host's rows go straight to its devices.
  When processes share rows (a model axis spanning hosts replicates the batch
  over them), the hosts' rows are gathered first, so that every process places
  the same global batch; without that, each would silently train on its own share.
  """
  hosts = jax.process_count()
  rows = len(next(iter(host_batch.values())))
  global_shapes = {k: (rows * hosts,) + v.shape[1:] for k, v in host_batch.items()}
  if hosts > 1 and _rows_on_this_process(sharding, next(iter(global_shapes.values()))) != rows:
    host_batch = multihost_utils.process_allgather(dict(host_batch), tiled=True)
  return {k: jax.make_array_from_process_local_data(sharding, v, global_shapes[k])
          for k, v in host_batch.items()}
