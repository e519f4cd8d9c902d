"""The Moral Integrity Corpus (Ziems et al., ACL 2022): prompt + chatbot reply → rule-of-thumb.

The release is one comma-separated, quoted file, `MIC.csv`, with a header line;
the columns read are `Q` (the prompt), `A` (the chatbot's reply), `rot` and
`split` (train / dev / test). One example per row (a reply with several RoTs has
several rows). Its data use agreement means it is downloaded by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus
from prosocial_jax.data.download import Release
from prosocial_jax.data.errors import DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://github.com/SALT-NLP/mic", "see the data use agreement",
    manual=("The Moral Integrity Corpus is released after a data use agreement: fill in "
            "https://forms.gle/kp8bPgFoBHeNL4Q68, then download MIC.csv from "
            "https://www.dropbox.com/sh/m46z42nce8x0ttk/AABuSZiA6ESyrJNWmgTPrfuRa?dl=0 "
            "into {folder}/"))

REQUIRED = ("Q", "A", "rot", "split")
# The `split` column's values -> split names.
SPLIT_COLUMN = {"train": "train", "dev": "validation", "test": "test"}


def _row(path: str, index: int, line: int, row: dict[str, str]) -> reading.NormExample:
  del index  # A row is named by its line.
  record = f"line {line}"
  if row["split"] not in SPLIT_COLUMN:
    raise DataFormatError(path, f"unknown split {row['split']!r}; expected one of "
                          f"{list(SPLIT_COLUMN)}", record=record, field="split")
  for field in ("Q", "A", "rot"):
    if not row[field].strip():
      raise DataFormatError(path, "empty", record=record, field=field)
  return reading.NormExample(situation=f"{row['Q']} {row['A']}", target=row["rot"],
                             id=row.get("id") or record, question=row["Q"], answer=row["A"],
                             split=SPLIT_COLUMN[row["split"]])


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  del splits  # One file holds every split.
  rng = out.text()
  rows = [["Q", "A", "rot", "split", "id"]]
  for split in SPLIT_COLUMN:
    rows += [[rng.sentence(5, 15), rng.sentence(5, 25), rng.rot(), split, f"{split}-{k}"]
             for k in range(n)]
  out.write_table("MIC.csv", rows, ",")


CORPUS = Corpus(name="moral_integrity_corpus", role="social_norms", files=r".*\.csv",
                read_files=reading.reader(reading.delimited(",", REQUIRED), _row), release=RELEASE,
                write_synthetic=_write_synthetic, one_file="MIC.csv")
