"""A Commonsense Norm Bank-style reader (Jiang et al., Delphi): situation → judgment.

The Norm Bank (released on request by its authors) names its files by split,
`train.freeform.tsv`, `validation.yesno.tsv`, ...; every file of a split is read
(free-form and yes/no modes together, as Delphi trains on both). A file is
tab-separated and either

* has a header line with at least `input_sequence` (the situation, or the
  statement for yes/no) and `text_label` (the free-text judgment, e.g. "it's
  rude"), as in the release's datasheet; or
* has no header: `<input><TAB><target>` per line (Delphi's own SeqIO TSVs).

The relative (comparison) mode has no free-text judgment and is not read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import SPLITS, Corpus
from prosocial_jax.data.download import Release
from prosocial_jax.data.errors import BadRecords, DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://github.com/liweijiang/delphi", "see the authors",
    manual=("The Commonsense Norm Bank is shared by its authors on request (see "
            "https://github.com/liweijiang/delphi, contact delphi@allenai.org). Put its "
            "<split>.freeform.tsv / <split>.yesno.tsv files into {folder}/"))

REQUIRED = ("input_sequence", "text_label")


def _pairs(path: str, bad: BadRecords) -> Iterator[tuple[int, tuple[str, str]]]:
  """(line number, (situation, judgment)) from a file with or without a header line."""
  text = reading.read_text(path)
  if "input_sequence" in text.split("\n", 1)[0].split("\t"):
    for number, row in reading.iter_delimited(path, text, delimiter="\t", required=REQUIRED, bad=bad):
      yield number, (row["input_sequence"], row["text_label"])
    return
  for number, line in reading.iter_text_lines(text):
    fields = line.split("\t")
    if len(fields) < 2:
      bad(DataFormatError(path, "expected '<situation><TAB><judgment>' (or a header line with "
                          "input_sequence and text_label)", record=f"line {number}"))
      continue
    yield number, (fields[0], fields[1])


def _example(path: str, index: int, line: int, pair: tuple[str, str]) -> reading.NormExample:
  del index  # A row is named by its line.
  record = f"line {line}"
  situation, target = pair
  if not situation.strip():
    raise DataFormatError(path, "empty", record=record, field="input_sequence")
  if not target.strip():
    raise DataFormatError(path, "empty", record=record, field="text_label")
  return reading.NormExample(situation=situation, target=target, id=record)


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  del splits  # Every split is written, as the release has them.
  rng = out.text()
  for split in SPLITS:
    rows = [["input_sequence", "class_label", "text_label", "input_type", "format", "source"]]
    rows += [[rng.sentence(4, 12), "-1", "it's " + rng.word(), "negative_rot",
              "freeform", "synthetic"] for _ in range(n)]
    out.write_table(f"{split}.freeform.tsv", rows, "\t")


CORPUS = Corpus(name="commonsense_norm_bank", role="social_norms", files=r".*\.tsv",
                read_files=reading.reader(_pairs, _example), release=RELEASE,
                write_synthetic=_write_synthetic, several_files_per_split=True)
