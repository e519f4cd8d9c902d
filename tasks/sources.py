"""A SeqIO DataSource over examples built in memory from the raw files.

Why not `seqio.FunctionDataSource`: it refuses multi-host sharding, and a
dataset of examples in file order (a dialogue's turns side by side) is poorly
mixed by a 1000-example shuffle buffer. This source

* reads the files when a dataset is built (so the data root and vocabulary can
  be chosen after `import tasks`), and builds the examples in memory;
* shards by example (host i of n takes examples i, i+n, ...), so every host gets
  its share without coordination;
* shuffles the whole split with the given seed, afresh (and deterministically)
  every epoch. Each raw example gives exactly one task example, so SeqIO's own
  shuffle buffer is not needed (the tasks have none: the first batch comes
  without first tokenizing a 1000-example buffer per task).

The same (split, seed, shard) always gives the same order, which is what makes
a restarted input pipeline repeatable (see docs/data.md).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import seqio
import tensorflow as tf

from tasks import data_sources

ExamplesFn = Callable[[str], Sequence[Mapping[str, Any]]]
_GATHER_BATCH = 256


class ExamplesSource(seqio.DataSource):
  """Examples of a split from `examples_fn(split)`, as string features `columns`."""

  def __init__(self, examples_fn: ExamplesFn, columns: Sequence[str], splits: Sequence[str]):
    # The whole split is shuffled here, so the Task needs no shuffle buffer of its own
    # (registration.py passes shuffle_buffer_size=None): no buffer to fill before the
    # first batch.
    super().__init__(splits=splits, performs_internal_shuffling=True)
    self._examples_fn = examples_fn
    self._columns = tuple(columns)

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def list_shards(self, split: str) -> Sequence[str]:
    return [split]

  def examples(self, split: str) -> Sequence[Mapping[str, Any]]:
    """The split's examples in file order (reads the files)."""
    return self._examples_fn(split)

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                  shard_info: seqio.ShardInfo | None = None, *, sequence_length=None,
                  use_cached: bool = False, num_epochs: int | None = 1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs  # Repeating is the Task's job.
    examples = self.examples(split)
    columns = data_sources.example_columns(examples, {c: tf.string for c in self._columns})
    indices = tf.data.Dataset.range(len(examples))
    if shard_info and shard_info.num_shards > 1:
      indices = indices.shard(shard_info.num_shards, shard_info.index)
    if shuffle:
      # A full shuffle of indices is cheap; each repetition reshuffles, seeded by `seed`.
      indices = indices.shuffle(max(len(examples), 1), seed=seed, reshuffle_each_iteration=True)
    # Gathering a batch of indices at a time is ~6x faster than one by one.
    return (indices.batch(_GATHER_BATCH)
            .map(lambda i: {k: tf.gather(v, i) for k, v in columns.items()},
                 num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch())
