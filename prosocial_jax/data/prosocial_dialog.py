"""ProsocialDialog in its "direct download" format, and the Canary examples built from it.

The release `prosocial_dialog_v1.tar.gz` holds `train.json`, `valid.json` and
`test.json`; each is one JSON list of dialogues, each dialogue a list of turns:

    {"text": str,                       # the (possibly unsafe) utterance
     "labels": [str],                   # the prosocial response to it
     "rots": [str] | null,              # rules-of-thumb (empty/null for most casual turns)
     "safety_label": str,               # one of labels.SAFETY_LABELS
     "safety_annotations": [str] * 3,   # casual / needs caution / needs intervention
     "safety_annotation_reasons": [str] * 3,
     "source": str,                     # socialchemistry, sbic, ethics_amt, ethics_reddit
     "etc": str | null,
     "episode_done": bool}

`read_dialogues` checks every turn and raises `DataFormatError` naming the file,
the dialogue / turn index and the field. Unknown extra fields are ignored.

Canary examples (`canary_examples`): one per turn.

* context — the dialogue history up to and including this turn's `text`: earlier
  turns' texts and their responses (`labels[0]`), oldest first, so the most
  recent utterance is last. Each utterance gets a speaker mark and utterances
  are joined by one space:

      "User: I skipped my friend's party. Bot: He might feel hurt. User: He'll get over it."

  Marks are counted back from the end: the last utterance (the one being judged)
  is `User:`, the one before it `Bot:`, and so on. Plain ASCII words and a colon
  survive any SentencePiece model (newlines do not: the default normalizer turns
  them into spaces), including a pretrained T5 vocabulary.
* target — `"<safety label> <rot 1>, <rot 2>"`; the label alone when the turn is
  casual or has no RoTs (the paper's rule; RoTs are kept verbatim, joined by ", ").
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Iterable, Sequence

import tensorflow as tf

from prosocial_jax.data import data_root as data_root_lib
from prosocial_jax.data.errors import DataFormatError
from prosocial_jax.data.labels import CASUAL, SAFETY_LABELS

CORPUS = "prosocial_dialog"
USER_MARK = "User:"
BOT_MARK = "Bot:"
UTTERANCE_SEPARATOR = " "
ROT_SEPARATOR = ", "


@dataclasses.dataclass(frozen=True)
class Turn:
  """One turn: an utterance, the prosocial response to it, and its annotations."""
  text: str
  response: str | None
  rots: tuple[str, ...]
  safety_label: str
  safety_annotations: tuple[str, ...] = ()
  safety_annotation_reasons: tuple[str, ...] = ()
  source: str | None = None
  etc: str | None = None
  episode_done: bool | None = None


@dataclasses.dataclass(frozen=True)
class Dialogue:
  """A dialogue; `index` is its position in the split file."""
  index: int
  turns: tuple[Turn, ...]


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean",
                    int: "number", float: "number", type(None): "null"}


def _json_type(value: Any) -> str:
  return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


class _TurnChecker:
  """Reads typed fields of one turn, raising DataFormatError that names the place."""

  def __init__(self, path: str, dialogue_index: int, turn_index: int, turn: dict):
    self.path = path
    self.record = f"dialogue {dialogue_index}, turn {turn_index}"
    self.turn = turn

  def error(self, field: str, problem: str) -> DataFormatError:
    return DataFormatError(self.path, problem, record=self.record, field=field)

  def string(self, field: str, *, required: bool = False) -> str | None:
    if field not in self.turn:
      if required:
        raise self.error(field, "missing")
      return None
    value = self.turn[field]
    if value is None and not required:
      return None
    if not isinstance(value, str):
      raise self.error(field, f"expected a string, got {_json_type(value)}")
    return value

  def strings(self, field: str) -> tuple[str, ...] | None:
    value = self.turn.get(field)
    if value is None:
      return None
    if not isinstance(value, list):
      raise self.error(field, f"expected a list of strings or null, got {_json_type(value)}")
    for k, item in enumerate(value):
      if not isinstance(item, str):
        raise self.error(field, f"item {k}: expected a string, got {_json_type(item)}")
    return tuple(value)

  def boolean(self, field: str) -> bool | None:
    value = self.turn.get(field)
    if value is not None and not isinstance(value, bool):
      raise self.error(field, f"expected true/false, got {_json_type(value)}")
    return value


def _parse_turn(path: str, i: int, j: int, turn: Any) -> Turn:
  if not isinstance(turn, dict):
    raise DataFormatError(path, f"a turn must be a JSON object, got {_json_type(turn)}",
                          record=f"dialogue {i}, turn {j}")
  check = _TurnChecker(path, i, j, turn)
  text = check.string("text", required=True)
  label = check.string("safety_label", required=True)
  if label not in SAFETY_LABELS:
    raise check.error("safety_label", f"unknown label {label!r}; expected one of {list(SAFETY_LABELS)}")
  labels = check.strings("labels")
  return Turn(
      text=text,
      response=labels[0] if labels else None,
      rots=check.strings("rots") or (),
      safety_label=label,
      safety_annotations=check.strings("safety_annotations") or (),
      safety_annotation_reasons=check.strings("safety_annotation_reasons") or (),
      source=check.string("source"),
      etc=check.string("etc"),
      episode_done=check.boolean("episode_done"),
  )


def parse_dialogues(data: Any, path: str | os.PathLike = "<data>") -> list[Dialogue]:
  """Validates already-decoded JSON `data` (a list of dialogues) into Dialogues."""
  path = os.fspath(path)
  if not isinstance(data, list):
    hint = ""
    if isinstance(data, dict) and "context" in data:
      hint = " (this looks like the Hugging Face column format, which this reader does not read)"
    raise DataFormatError(path, f"the top level must be a JSON list of dialogues, got "
                          f"{_json_type(data)}{hint}")
  dialogues = []
  for i, dialogue in enumerate(data):
    record = f"dialogue {i}"
    if not isinstance(dialogue, list):
      hint = ""
      if isinstance(dialogue, dict) and "context" in dialogue:
        hint = " (this looks like a Hugging Face row, which this reader does not read)"
      raise DataFormatError(path, f"a dialogue must be a list of turns, got "
                            f"{_json_type(dialogue)}{hint}", record=record)
    if not dialogue:
      raise DataFormatError(path, "the dialogue has no turns", record=record)
    turns = tuple(_parse_turn(path, i, j, turn) for j, turn in enumerate(dialogue))
    dialogues.append(Dialogue(index=i, turns=turns))
  return dialogues


def read_dialogues(path: str | os.PathLike) -> list[Dialogue]:
  """Reads one split file of the direct-download release (local path or gs://)."""
  path = os.fspath(path)
  if not tf.io.gfile.exists(path):
    raise DataFormatError(path, "file not found")
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      text = f.read().decode("utf-8")
  except UnicodeDecodeError as e:
    raise DataFormatError(path, f"not UTF-8 text (byte {e.start})") from None
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    hint = ""
    if e.msg == "Extra data" and e.lineno > 1:
      hint = ("; this looks like JSON Lines (one record per line), but the direct-download "
              "format is one JSON list of dialogues")
    raise DataFormatError(path, f"invalid JSON: {e.msg}{hint}",
                          record=f"line {e.lineno} column {e.colno}") from None
  return parse_dialogues(data, path)


def load_split(split: str, data_root: str | os.PathLike | None = None) -> list[Dialogue]:
  """Reads `split` (train / validation / test) of ProsocialDialog from the data root."""
  folder = data_root_lib.corpus_dir(CORPUS, data_root)
  return read_dialogues(data_root_lib.find_split_file(folder, split))


def format_history(utterances: Sequence[str]) -> str:
  """Joins utterances (oldest first) with speaker marks; the last one is `User:`."""
  n = len(utterances)
  return UTTERANCE_SEPARATOR.join(
      f"{USER_MARK if (n - 1 - k) % 2 == 0 else BOT_MARK} {u.strip()}"
      for k, u in enumerate(utterances))


def canary_target(safety_label: str, rots: Iterable[str]) -> str:
  """`"<label> <rot>, <rot>"`; the label alone for casual turns or when there are no RoTs."""
  rots = [r.strip() for r in rots if r and r.strip()]
  if safety_label == CASUAL or not rots:
    return safety_label
  return f"{safety_label} {ROT_SEPARATOR.join(rots)}"


def canary_examples(dialogues: Iterable[Dialogue]) -> list[dict[str, Any]]:
  """One Canary example per turn: context, target, safety_label, rots, indices."""
  examples = []
  for dialogue in dialogues:
    history: list[str] = []
    for j, turn in enumerate(dialogue.turns):
      history.append(turn.text)
      examples.append({
          "context": format_history(history),
          "target": canary_target(turn.safety_label, turn.rots),
          "safety_label": turn.safety_label,
          "rots": list(turn.rots),
          "dialogue_index": dialogue.index,
          "turn_index": j,
      })
      history.append(turn.response or "")
  return examples


# A new RoT starts after ", " followed by a capital letter ("It's ...", "You ...");
# commas inside one RoT are usually followed by lower case ("..., even if ...").
_ROT_SPLIT = re.compile(r",\s+(?=[A-Z])")


def parse_canary_output(text: str) -> tuple[str | None, list[str]]:
  """Splits Canary output into (safety label or None, RoTs).

  The label is recognised when the text starts with one of SAFETY_LABELS (with
  or without a following space). Since the paper joins RoTs with ", ", the split
  is a heuristic: a new RoT starts at ", " followed by an upper-case letter.
  """
  text = text.strip()
  label = None
  for candidate in SAFETY_LABELS:
    if text.startswith(candidate):
      label, text = candidate, text[len(candidate):].strip()
      break
  rots = [r.strip() for r in _ROT_SPLIT.split(text)] if text else []
  return label, [r for r in rots if r]
