"""The shared `load_split` of readers whose release marks the split in the file name."""

from __future__ import annotations

import os
from typing import Callable

from prosocial_jax.data import data_root as data_root_lib
from prosocial_jax.data.records import ReadResult


def load_split(corpus: str, split: str, data_root: str | os.PathLike | None, *,
               read_files: Callable[..., ReadResult], accept: Callable[[str], bool],
               multiple: bool = False, skip_bad_records: bool = False) -> ReadResult:
  """Finds `split`'s file(s) in the corpus folder and reads them with `read_files`."""
  folder = data_root_lib.corpus_dir(corpus, data_root)
  paths = data_root_lib.find_split_files(folder, split, accept=accept, multiple=multiple)
  return read_files(paths, skip_bad_records=skip_bad_records)
