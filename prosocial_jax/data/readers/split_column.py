"""The shared `load_split` of readers whose release keeps every split in one file."""

from __future__ import annotations

import os
from typing import Callable

from prosocial_jax.data import data_root as data_root_lib
from prosocial_jax.data.records import ReadResult


def load_split(corpus: str, split: str, data_root: str | os.PathLike | None, *,
               read_file: Callable[..., ReadResult], accept: Callable[[str], bool],
               expected: str, skip_bad_records: bool = False) -> ReadResult:
  """Finds the corpus's one data file and reads the rows of `split` from it."""
  folder = data_root_lib.corpus_dir(corpus, data_root)
  path = data_root_lib.find_data_file(folder, accept, expected)
  return read_file(path, split=data_root_lib.canonical_split(split),
                   skip_bad_records=skip_bad_records)
