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

import json
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus, split_file_word
from prosocial_jax.data.download import PARLAI_DOWNLOADS, Release, Remote
from prosocial_jax.data.errors import BadRecords, DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "http://yanran.li/dailydialog", "CC BY-NC-SA 4.0", files=(Remote(
        f"{PARLAI_DOWNLOADS}/dailydialog/dailydialog.tar.gz",
        sha256="c3adb09bd715b9fa5cd1ac41613b7de61eb5afbe477826a6146abefef573e6bb",
        keep=r"^(train|valid|test)\.json$"),))

EOU = "__eou__"


class _EouLine(str):
  """A line of the authors' text format (a JSON line is decoded instead)."""


def _lines(path: str, bad: BadRecords) -> Iterator[tuple[int, Any]]:
  """(line number, dialogue line): decoded JSON lines, or the text format's lines."""
  text = reading.read_text(path)
  first = next(reading.iter_text_lines(text))[1].lstrip()
  if first.startswith("[") and EOU not in first:  # (a text line may start "[laughs] ...")
    raise DataFormatError(path, "the file is one JSON list; expected JSON lines (one dialogue "
                          "object per line, ParlAI's format) or the authors' text format "
                          f"(utterances ended by {EOU})")
  if first.startswith("{"):
    yield from reading.iter_json_lines(path, text, bad)
  else:
    for number, line in reading.iter_text_lines(text):
      yield number, _EouLine(line)


def _conversation(index: int, id_: str, utterances: list[str]) -> reading.Conversation:
  return reading.Conversation(index=index, id=id_, utterances=tuple(utterances),
                              responses=tuple(range(1, len(utterances))))


def _dialogue(path: str, index: int, line: int, value: Any) -> reading.Conversation:
  record = f"line {line}"
  if isinstance(value, _EouLine):
    return _eou_dialogue(path, index, record, value)
  f = reading.Fields(path, record, value)
  utterances = f.texts("dialogue", "text", item="utterance")
  topic = f.string("topic") or ""
  return _conversation(index, f"{index}:{topic}" if topic else str(index), utterances)


def _eou_dialogue(path: str, index: int, record: str, line: str) -> reading.Conversation:
  if EOU not in line:
    raise DataFormatError(path, f"no {EOU}: a line of the authors' format ends each utterance "
                          f"with {EOU} (or the file is JSON lines: one object per line)",
                          record=record)
  parts = [p.strip() for p in line.split(EOU)]
  if parts and not parts[-1]:
    parts.pop()  # the text after the last __eou__
  if not parts:
    raise DataFormatError(path, "the dialogue has no utterances", record=record)
  for k, part in enumerate(parts):
    if not part:
      raise DataFormatError(path, f"utterance {k} is empty (two {EOU} in a row?)", record=record)
  return _conversation(index, str(index), parts)


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    out.write_lines(f"{split_file_word(split)}.json", [
        json.dumps({"fold": split, "topic": "ordinary_life",
                    "dialogue": [{"text": u, "act": "inform", "emotion": "no_emotion"} for u in d]})
        for d in rng.dialogues(n, 2, 10, (5, 16))])


# ParlAI's .json(l) files or the authors' dialogues_<split>.txt (not the act/emotion files).
CORPUS = Corpus(name="daily_dialog", role="casual",
                files=r".*\.jsonl?|(?!dialogues_(act|emotion)).*\.txt",
                read_files=reading.reader(_lines, _dialogue), release=RELEASE,
                write_synthetic=_write_synthetic)
