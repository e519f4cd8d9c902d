"""EmpatheticDialogues (Rashkin et al., ACL 2019) in its release format.

`empatheticdialogues.tar.gz` (the authors', mirrored by ParlAI) holds train.csv,
valid.csv and test.csv: a header line

    conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags

then one utterance per line, the lines of a conversation consecutive. The file is
split on every comma — it is not quoted CSV: commas inside text are written
`_comma_` (restored here). Some lines carry a 9th field (inline candidates), which
is ignored. `context` is the emotion, `prompt` the situation; neither goes into the
model input.

The speaker opens, the listener answers: as in ParlAI, the listener's turns (every
second utterance) are the responses.
"""

from __future__ import annotations

import os
from typing import Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import Conversation, ReadResult, alternate_responses

CORPUS = "empathetic_dialogues"
HEADER = ("conv_id", "utterance_idx", "context", "prompt", "speaker_idx", "utterance")
_FIELD_COUNTS = (8, 9)


def _unescape(text: str) -> str:
  return text.replace("_comma_", ",")


def _utterance(path: str, number: int, line: str) -> tuple[str, str]:
  """(conv_id, utterance) of one data line."""
  record = f"line {number}"
  fields = line.split(",")
  if len(fields) not in _FIELD_COUNTS:
    raise DataFormatError(path, f"expected 8 or 9 comma-separated fields, got {len(fields)} "
                          "(a raw comma in the text? the release writes them as _comma_)",
                          record=record)
  conv_id, utterance_idx, utterance = fields[0], fields[1], _unescape(fields[5])
  if not conv_id:
    raise DataFormatError(path, "empty", record=record, field="conv_id")
  if not utterance_idx.strip().isdigit():
    raise DataFormatError(path, f"expected a number, got {utterance_idx!r}", record=record,
                          field="utterance_idx")
  if not utterance.strip():
    raise DataFormatError(path, "empty", record=record, field="utterance")
  return conv_id, utterance


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  bad = BadRecords(skip_bad_records)
  conversations: list[Conversation] = []
  paths = [os.fspath(p) for p in paths]

  def close(conv_id: str | None, utterances: list[str]) -> None:
    if conv_id is not None and utterances:
      conversations.append(Conversation(
          index=len(conversations), id=conv_id, utterances=tuple(utterances),
          responses=alternate_responses(len(utterances))))

  for path in paths:
    lines = fileio.read_text(path).splitlines()
    header = tuple(lines[0].split(",")[:len(HEADER)]) if lines else ()
    if header != HEADER:
      raise DataFormatError(path, f"expected the header {','.join(HEADER)},...; got "
                            f"{lines[0][:80] if lines else 'an empty file'!r}", record="line 1")
    conv_id, utterances = None, []
    for number, line in enumerate(lines[1:], start=2):
      if not line.strip():
        continue
      parsed = fileio.guarded(bad, lambda: _utterance(path, number, line))
      if parsed is None:
        continue
      if parsed[0] != conv_id:
        close(conv_id, utterances)
        conv_id, utterances = parsed[0], []
      utterances.append(parsed[1])
    close(conv_id, utterances)
  bad.report(", ".join(paths))
  return ReadResult(conversations, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  return name.lower().endswith(".csv")


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, skip_bad_records=skip_bad_records)
