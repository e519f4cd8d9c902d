"""The Moral Integrity Corpus (Ziems et al., ACL 2022): prompt + chatbot reply → rule-of-thumb.

The release is one comma-separated, quoted file, `MIC.csv`, with a header line;
the columns read are `Q` (the prompt), `A` (the chatbot's reply), `rot` and
`split` (train / dev / test). One example per row (a reply with several RoTs has
several rows).
"""

from __future__ import annotations

import os

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_column
from prosocial_jax.data.readers.norm_records import NormExample
from prosocial_jax.data.records import ReadResult

CORPUS = "moral_integrity_corpus"
REQUIRED = ("Q", "A", "rot", "split")
SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def _row(path: str, number: int, row: dict[str, str]) -> tuple[str, NormExample]:
  record = f"line {number}"
  if row["split"] not in SPLITS:
    raise DataFormatError(path, f"unknown split {row['split']!r}; expected one of {list(SPLITS)}",
                          record=record, field="split")
  for field in ("Q", "A", "rot"):
    if not row[field].strip():
      raise DataFormatError(path, "empty", record=record, field=field)
  return SPLITS[row["split"]], NormExample(
      situation=f"{row['Q']} {row['A']}", target=row["rot"], id=row.get("id") or record,
      question=row["Q"], answer=row["A"])


def read_file(path: str | os.PathLike, *, split: str | None = None,
              skip_bad_records: bool = False) -> ReadResult[NormExample]:
  """The rows of `split` (train / validation / test; None: all)."""
  path = os.fspath(path)
  bad = BadRecords(skip_bad_records)
  examples = []
  for number, row in fileio.iter_delimited(path, fileio.read_text(path), delimiter=",",
                                           required=REQUIRED, bad=bad):
    parsed = fileio.guarded(bad, lambda: _row(path, number, row))
    if parsed is not None and (split is None or parsed[0] == split):
      examples.append(parsed[1])
  bad.report(path)
  return ReadResult(examples, bad.errors, [path])


def accept_file(name: str) -> bool:
  return name.lower().endswith(".csv")


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[NormExample]:
  return split_column.load_split(CORPUS, split, data_root, read_file=read_file,
                                 accept=accept_file, expected="MIC.csv",
                                 skip_bad_records=skip_bad_records)
