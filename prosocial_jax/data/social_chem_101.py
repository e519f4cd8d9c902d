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

from typing import TYPE_CHECKING, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus
from prosocial_jax.data.download import Release, Remote
from prosocial_jax.data.errors import DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://maxwellforbes.com/social-chemistry/", "CC BY-SA 4.0",
    files=(Remote("https://storage.googleapis.com/ai2-mosaic-public/projects/social-chemistry/"
                  "data/social-chem-101.zip", keep=r"^social-chem-101\.v1\.0\.tsv$"),))

REQUIRED = ("situation", "rot", "split", "rot-bad")
# The `split` column's values: those read (-> split names), and the others.
SPLIT_COLUMN = {"train": "train", "dev": "validation", "test": "test"}
OTHER_SPLIT_VALUES = ("dev-extra", "test-extra", "analysis", "none")


def _row(path: str, index: int, line: int, row: dict[str, str]) -> reading.NormExample | None:
  """The row's example; None for a row that is not read (another split value, a bad RoT)."""
  del index  # A row is named by its line.
  record = f"line {line}"
  split = row["split"]
  if split not in SPLIT_COLUMN and split not in OTHER_SPLIT_VALUES:
    raise DataFormatError(path, f"unknown split {split!r}; expected one of "
                          f"{list(SPLIT_COLUMN) + list(OTHER_SPLIT_VALUES)}",
                          record=record, field="split")
  if row["rot-bad"] not in ("0", "1"):
    raise DataFormatError(path, f"expected 0 or 1, got {row['rot-bad']!r}", record=record,
                          field="rot-bad")
  for field in ("situation", "rot"):
    if not row[field].strip():
      raise DataFormatError(path, "empty", record=record, field=field)
  if split in OTHER_SPLIT_VALUES or row["rot-bad"] == "1":
    return None
  return reading.NormExample(situation=row["situation"], target=row["rot"],
                             id=row.get("rot-id") or record, split=SPLIT_COLUMN[split])


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  del splits  # One file holds every split.
  rng = out.text()
  rows = [["area", "m", "split", "rot-agree", "rot-bad", "situation", "rot", "rot-id"]]
  for split in SPLIT_COLUMN:
    for s in range(n):
      situation = rng.sentence(5, 15)
      for r in range(rng.randint(1, 3)):
        rows.append(["amitheasshole", "1", split, "4", "0", situation, rng.rot(), f"{split}-{s}-{r}"])
  out.write_table("social-chem-101.v1.0.tsv", rows, "\t")


CORPUS = Corpus(name="social_chem_101", role="social_norms", files=r".*\.tsv",
                read_files=reading.reader(reading.delimited("\t", REQUIRED), _row), release=RELEASE,
                write_synthetic=_write_synthetic, one_file="social-chem-101.v1.0.tsv")
