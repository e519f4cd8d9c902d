"""Social Chemistry 101 (Forbes et al., EMNLP 2020): situation → rule-of-thumb.

The release (`social-chem-101.zip`) holds one tab-separated file,
`social-chem-101.v1.0.tsv`, with a header line; the columns read are `situation`,
`rot`, `split`, `rot-bad` and `rot-id` (the others — area, judgments, moral
foundations, ... — are not needed). The split comes from the `split` column
(train / dev / test; the dev-extra, test-extra, analysis and none rows repeat
RoTs of the main splits with more annotators and are not read). RoTs a worker
marked as bad (`rot-bad` = 1: confusing or very low quality) are left out, as the
release's README suggests for training. One example per (situation, RoT) row.
"""

from __future__ import annotations

import os

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_column
from prosocial_jax.data.readers.norm_records import NormExample
from prosocial_jax.data.records import ReadResult

CORPUS = "social_chem_101"
REQUIRED = ("situation", "rot", "split", "rot-bad")
SPLITS = {"train": "train", "dev": "validation", "test": "test"}
OTHER_SPLITS = ("dev-extra", "test-extra", "analysis", "none")


def _row(path: str, number: int, row: dict[str, str]) -> tuple[str, str, NormExample]:
  record = f"line {number}"
  split = row["split"]
  if split not in SPLITS and split not in OTHER_SPLITS:
    raise DataFormatError(path, f"unknown split {split!r}; expected one of "
                          f"{list(SPLITS) + list(OTHER_SPLITS)}", record=record, field="split")
  if row["rot-bad"] not in ("0", "1"):
    raise DataFormatError(path, f"expected 0 or 1, got {row['rot-bad']!r}", record=record,
                          field="rot-bad")
  for field in ("situation", "rot"):
    if not row[field].strip():
      raise DataFormatError(path, "empty", record=record, field=field)
  example = NormExample(situation=row["situation"], target=row["rot"],
                        id=row.get("rot-id") or record)
  return split, row["rot-bad"], example


def read_file(path: str | os.PathLike, *, split: str | None = None,
              skip_bad_records: bool = False) -> ReadResult[NormExample]:
  """The rows of `split` (train / validation / test; None: all three) that are not rot-bad."""
  path = os.fspath(path)
  bad = BadRecords(skip_bad_records)
  examples = []
  text = fileio.read_text(path)
  for number, row in fileio.iter_delimited(path, text, delimiter="\t", required=REQUIRED, bad=bad):
    parsed = fileio.guarded(bad, lambda: _row(path, number, row))
    if parsed is None:
      continue
    row_split, rot_bad, example = parsed
    if SPLITS.get(row_split) is None or rot_bad == "1":
      continue
    if split is None or SPLITS[row_split] == split:
      examples.append(example)
  bad.report(path)
  return ReadResult(examples, bad.errors, [path])


def accept_file(name: str) -> bool:
  return name.lower().endswith(".tsv")


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[NormExample]:
  return split_column.load_split(CORPUS, split, data_root, read_file=read_file,
                                 accept=accept_file, expected="social-chem-101.v1.0.tsv",
                                 skip_bad_records=skip_bad_records)
