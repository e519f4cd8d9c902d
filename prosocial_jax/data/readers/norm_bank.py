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

import os
from typing import Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.readers.norm_records import NormExample
from prosocial_jax.data.records import ReadResult

CORPUS = "commonsense_norm_bank"
REQUIRED = ("input_sequence", "text_label")


def _example(path: str, record: str, situation: str, target: str) -> NormExample:
  if not situation.strip():
    raise DataFormatError(path, "empty", record=record, field="input_sequence")
  if not target.strip():
    raise DataFormatError(path, "empty", record=record, field="text_label")
  return NormExample(situation=situation, target=target, id=record)


def _read(path: str, bad: BadRecords) -> list[NormExample]:
  text = fileio.read_text(path)
  first = text.split("\n", 1)[0].split("\t")
  examples = []
  if "input_sequence" in first:
    for number, row in fileio.iter_delimited(path, text, delimiter="\t", required=REQUIRED, bad=bad):
      e = fileio.guarded(bad, lambda: _example(path, f"line {number}", row["input_sequence"],
                                               row["text_label"]))
      if e is not None:
        examples.append(e)
    return examples
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) < 2:
      bad(DataFormatError(path, "expected '<situation><TAB><judgment>' (or a header line with "
                          "input_sequence and text_label)", record=f"line {number}"))
      continue
    e = fileio.guarded(bad, lambda: _example(path, f"line {number}", fields[0], fields[1]))
    if e is not None:
      examples.append(e)
  return examples


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[NormExample]:
  bad = BadRecords(skip_bad_records)
  paths = [os.fspath(p) for p in paths]
  examples = [e for path in paths for e in _read(path, bad)]
  bad.report(", ".join(paths))
  return ReadResult(examples, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[NormExample]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  return name.lower().endswith(".tsv")


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[NormExample]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, multiple=True,
                                skip_bad_records=skip_bad_records)
