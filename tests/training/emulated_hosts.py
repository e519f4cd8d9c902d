"""The training entry point in one process, reading its input as N hosts would.

    python tests/training/emulated_hosts.py N --gin_file=... --gin.NAME=VALUE ...

runs `prosocial_jax.train` unchanged except for the input: each global batch is
host 0's batch, then host 1's, ..., where host i's batch (BATCH_SIZE / N rows)
comes from shard i of N of the data, exactly as process i of an N-process job
reads it. Those are the global batches of an N-process run on a mesh whose
batch axes split over the processes in order: the reference of test_multihost.py.
"""

import sys
from unittest import mock

import numpy as np
import seqio

from prosocial_jax import train
from prosocial_jax.training import input_pipeline


class HostBatches:
  """N hosts' input iterators side by side: one global batch per step."""

  def __init__(self, iterators):
    self._iterators = iterators

  def __iter__(self):
    return self

  def __next__(self):
    batches = [next(iterator) for iterator in self._iterators]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

  def save(self, prefix):
    for index, iterator in enumerate(self._iterators):
      iterator.save(f"{prefix}_host{index}")


def emulate_hosts(hosts: int):
  """Patches the input pipeline so that one process reads like `hosts` processes."""
  train_batches = input_pipeline.train_batches

  def host_batches(mixture_or_task_name, task_feature_lengths, global_batch_size, **kwargs):
    iterators = []
    for index in range(hosts):
      # The shard is read when the dataset is built, inside train_batches.
      with mock.patch.object(input_pipeline, "_shard_info",
                             lambda: seqio.ShardInfo(index=index, num_shards=hosts)):
        iterators.append(train_batches(mixture_or_task_name, task_feature_lengths,
                                       global_batch_size // hosts, **kwargs))
    return HostBatches(iterators)

  return mock.patch.object(input_pipeline, "train_batches", host_batches)


if __name__ == "__main__":
  with emulate_hosts(int(sys.argv[1])):
    train.main(sys.argv[2:])
