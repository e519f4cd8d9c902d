"""Shared pieces of the tasks' data sources: the data root they read, and examples → tf.data.

Tasks are registered at import, before gin has been parsed, so the data root is
looked up only when a dataset is built: `set_data_root` (called by the trainer
after gin parsing) wins, else `resolve_data_root()` (env var, then default).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import tensorflow as tf

from prosocial_jax.data.data_root import resolve_data_root

_data_root: str | None = None


def set_data_root(path: str | os.PathLike | None) -> None:
  """Sets the data root the tasks read from; None goes back to the env var / default."""
  global _data_root
  _data_root = None if path is None else os.fspath(path)


def get_data_root() -> str:
  """The data root in effect now: set_data_root's, else $PROSOCIAL_JAX_DATA, else the default."""
  return resolve_data_root(_data_root)


def examples_to_dataset(examples: Sequence[Mapping[str, Any]],
                        dtypes: Mapping[str, tf.dtypes.DType]) -> tf.data.Dataset:
  """A dataset of scalar features `dtypes` taken from in-memory example dicts."""
  columns = {key: tf.constant([ex[key] for ex in examples], dtype=dtype, shape=[len(examples)])
             for key, dtype in dtypes.items()}
  return tf.data.Dataset.from_tensor_slices(columns)
