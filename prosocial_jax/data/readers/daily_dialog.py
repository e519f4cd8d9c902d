"""DailyDialog (Li et al., IJCNLP 2017) in its two distributed formats.

ParlAI's conversion (`dailydialog.tar.gz`: train.json, valid.json, test.json; what
`python -m prosocial_jax.data download daily_dialog` fetches): JSON lines, one
dialogue per line,

    {"fold": "train", "topic": str, "dialogue": [{"text": str, "act": str, "emotion": str}, ...]}

The authors' release (`ijcnlp_dailydialog.zip`): `dialogues_train.txt`,
`dialogues_validation.txt`, `dialogues_test.txt`, one dialogue per line with the
utterances ended by `__eou__`. The act / emotion files beside them are not read.

Text keeps the release's tokenization ("Good morning , sir ."). ParlAI plays both
sides of a DailyDialog conversation, so every utterance after the first is a
response.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import Conversation, ReadResult

CORPUS = "daily_dialog"
EOU = "__eou__"


def _conversation(index: int, id_: str, utterances: list[str]) -> Conversation:
  return Conversation(index=index, id=id_, utterances=tuple(utterances),
                      responses=tuple(range(1, len(utterances))))


def _parlai_dialogue(path: str, index: int, record: str, line: Any) -> Conversation:
  f = fileio.Fields(path, record, line)
  turns = f.list("dialogue", nonempty=True)
  utterances = []
  for k, turn in enumerate(turns):
    t = fileio.Fields(path, f"{record}, utterance {k}", turn)
    utterances.append(t.string("text", required=True, nonempty=True))
  topic = f.string("topic") or ""
  return _conversation(index, f"{index}:{topic}" if topic else str(index), utterances)


def _official_dialogue(path: str, index: int, record: str, line: str) -> Conversation:
  parts = [p.strip() for p in line.split(EOU)]
  if parts and not parts[-1]:
    parts.pop()  # the text after the last __eou__
  if not parts:
    raise DataFormatError(path, "the dialogue has no utterances", record=record)
  for k, part in enumerate(parts):
    if not part:
      raise DataFormatError(path, f"utterance {k} is empty (two {EOU} in a row?)", record=record)
  return _conversation(index, str(index), parts)


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  bad = BadRecords(skip_bad_records)
  conversations: list[Conversation] = []
  position = 0  # a dialogue's index is its position, skipped dialogues included
  paths = [os.fspath(p) for p in paths]
  for path in paths:
    text = fileio.read_text(path)
    if text.lstrip().startswith("{"):
      records = ((f"line {n}", line, _parlai_dialogue) for n, line in fileio.iter_json_lines(path, text, bad))
    else:
      records = ((f"line {n}", line, _official_dialogue)
                 for n, line in enumerate(text.splitlines(), start=1) if line.strip())
    for record, line, parse in records:
      c = fileio.guarded(bad, lambda: parse(path, position, record, line))
      position += 1
      if c is not None:
        conversations.append(c)
  bad.report(", ".join(paths))
  return ReadResult(conversations, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  """ParlAI's .json(l) files or the authors' dialogues_<split>.txt (not the act/emotion files)."""
  lower = name.lower()
  if lower.endswith((".json", ".jsonl")):
    return True
  return lower.endswith(".txt") and not lower.startswith(("dialogues_act", "dialogues_emotion"))


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, skip_bad_records=skip_bad_records)
