"""ProsocialDialog in both public formats; the format is found from the content.

Direct download (`prosocial_dialog_v1.tar.gz`: train.json, valid.json, test.json):
one JSON list of dialogues, each a list of turns

    {"text": str,                       # the (possibly unsafe) utterance
     "labels": [str],                   # the prosocial response to it
     "rots": [str] | null,              # rules-of-thumb (empty/null for most casual turns)
     "safety_label": str,               # one of labels.SAFETY_LABELS
     "safety_annotations": [str] * 3,   # casual / needs caution / needs intervention
     "safety_annotation_reasons": [str] * 3,
     "source": str,                     # socialchemistry, sbic, ethics_amt, ethics_reddit
     "etc": str | null,
     "episode_done": bool}

Hugging Face (`allenai/prosocial-dialog`: train.json, valid.json, test.json as JSON
lines; also Parquet, a JSON list of rows, or a JSON object of columns as
`datasets`' `to_dict()` writes): one row per turn,

    {"context": str,      # the utterance (the direct format's "text")
     "response": str,     # the direct format's "labels"[0]
     "rots", "safety_label", "safety_annotations", "safety_annotation_reasons",
     "source", "etc", "episode_done": as above,
     "dialogue_id": int, "response_id": int}

Rows are grouped into dialogues by `dialogue_id` (in order of first appearance)
and ordered by `response_id`; a repeated (dialogue_id, response_id) is an error.
Both formats give the same `Dialogue`s, from which each turn's history is rebuilt
(examples/prosocial_dialog.py). Unknown extra fields are ignored.

Every problem raises DataFormatError naming the file, the record (dialogue / turn,
or line / row) and the field. With `skip_bad_records`, a dialogue with a bad turn
(or a bad row) is left out whole — a gap would corrupt the history of the turns
after it — and the error is returned in `ReadResult.skipped`. (A JSON line that
does not parse at all cannot name its dialogue; only that line is left out.)
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Iterable

from prosocial_jax.data import data_root as data_root_lib
from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.data.records import ReadResult

CORPUS = "prosocial_dialog"
DATA_SUFFIXES = (".json", ".jsonl", ".parquet")
HF_REQUIRED = ("context", "response", "safety_label", "dialogue_id", "response_id")


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
  """A dialogue; `index` is its position in the file (direct format) or its dialogue_id (HF)."""
  index: int
  turns: tuple[Turn, ...]


def _annotations(f: fileio.Fields) -> dict[str, Any]:
  label = f.string("safety_label", required=True)
  if label not in SAFETY_LABELS:
    raise f.error("safety_label", f"unknown label {label!r}; expected one of {list(SAFETY_LABELS)}")
  return dict(
      rots=f.strings("rots") or (),
      safety_label=label,
      safety_annotations=f.strings("safety_annotations") or (),
      safety_annotation_reasons=f.strings("safety_annotation_reasons") or (),
      source=f.string("source"),
      etc=f.string("etc"),
      episode_done=f.boolean("episode_done"),
  )


# ---------------------------------------------------------------- direct download

def _direct_turn(path: str, i: int, j: int, turn: Any) -> Turn:
  record = f"dialogue {i}, turn {j}"
  if not isinstance(turn, dict):
    raise DataFormatError(path, f"a turn must be a JSON object, got {fileio.json_type(turn)}",
                          record=record)
  f = fileio.Fields(path, record, turn)
  text = f.string("text", required=True)
  labels = f.strings("labels")
  return Turn(text=text, response=labels[0] if labels else None, **_annotations(f))


def _direct_dialogue(path: str, i: int, dialogue: Any) -> Dialogue:
  record = f"dialogue {i}"
  if not isinstance(dialogue, list):
    hint = ""
    if isinstance(dialogue, dict) and "context" in dialogue:
      hint = " (a Hugging Face row inside a direct-download list?)"
    raise DataFormatError(path, f"a dialogue must be a list of turns, got "
                          f"{fileio.json_type(dialogue)}{hint}", record=record)
  if not dialogue:
    raise DataFormatError(path, "the dialogue has no turns", record=record)
  return Dialogue(index=i, turns=tuple(_direct_turn(path, i, j, t) for j, t in enumerate(dialogue)))


def parse_dialogues(data: Any, path: str | os.PathLike = "<data>", *,
                    bad: BadRecords | None = None) -> list[Dialogue]:
  """Validates already-decoded direct-download JSON (a list of dialogues) into Dialogues."""
  path = os.fspath(path)
  bad = bad or BadRecords()
  if not isinstance(data, list):
    raise DataFormatError(path, f"the top level must be a JSON list of dialogues, got "
                          f"{fileio.json_type(data)}")
  dialogues = []
  for i, dialogue in enumerate(data):
    parsed = fileio.guarded(bad, lambda: _direct_dialogue(path, i, dialogue))
    if parsed is not None:
      dialogues.append(parsed)
  return dialogues


# ---------------------------------------------------------------- Hugging Face rows

@dataclasses.dataclass(frozen=True)
class _Row:
  dialogue_id: int
  response_id: int
  record: str
  turn: Turn


def _hf_row(path: str, record: str, row: Any) -> _Row:
  f = fileio.Fields(path, record, row)
  text = f.string("context", required=True)
  response = f.string("response", required=True)
  turn = Turn(text=text, response=response, **_annotations(f))
  return _Row(dialogue_id=f.integer("dialogue_id", required=True),
              response_id=f.integer("response_id", required=True), record=record, turn=turn)


def _rows_from_columns(path: str, data: dict[str, Any]) -> Iterable[tuple[str, Any]]:
  """A JSON object of equal-length columns (`datasets`' to_dict()) as (record, row) pairs."""
  for name in HF_REQUIRED:
    if name not in data:
      raise DataFormatError(
          path, f"a top-level JSON object must hold the Hugging Face columns {list(HF_REQUIRED)} "
          f"(the direct-download format is a JSON list of dialogues); found keys {sorted(data)[:8]}",
          field=name)
  lengths = {}
  for name, column in data.items():
    if not isinstance(column, list):
      raise DataFormatError(path, f"expected a column (a list), got {fileio.json_type(column)}",
                            field=name)
    lengths[name] = len(column)
  n = lengths.get("context", 0)
  for name, length in lengths.items():
    if length != n:
      raise DataFormatError(path, f"the column has {length} values but 'context' has {n}", field=name)
  for k in range(n):
    yield f"row {k}", {name: column[k] for name, column in data.items()}


def _hf_records(path: str, data: bytes, bad: BadRecords) -> Iterable[tuple[str, Any]]:
  """(record, row) pairs of a Hugging Face file in any of its encodings."""
  if data[:4] == b"PAR1":
    for k, row in enumerate(fileio.iter_parquet_rows(path, data)):
      yield f"row {k}", row
    return
  text = fileio.decode_utf8(path, data)
  if fileio.looks_like_json_lines(text):
    for number, row in fileio.iter_json_lines(path, text, bad):
      yield f"line {number}", row
    return
  decoded = fileio.parse_json(path, text, expected="one JSON document")
  if isinstance(decoded, dict):
    yield from _rows_from_columns(path, decoded)
  elif not isinstance(decoded, list):
    raise DataFormatError(path, "the top level must be a JSON list of dialogues (direct download), "
                          "or rows / an object of columns (Hugging Face), got "
                          f"{fileio.json_type(decoded)}")
  else:
    for k, row in enumerate(decoded):
      yield f"row {k}", row


def group_rows(path: str, rows: Iterable[_Row], bad: BadRecords) -> list[Dialogue]:
  """Rows → Dialogues: grouped by dialogue_id (first-appearance order), sorted by response_id."""
  by_dialogue: dict[int, list[_Row]] = collections.OrderedDict()
  for row in rows:
    by_dialogue.setdefault(row.dialogue_id, []).append(row)
  dialogues = []
  for dialogue_id, group in by_dialogue.items():
    group.sort(key=lambda r: r.response_id)
    seen: dict[int, str] = {}
    duplicate = None
    for row in group:
      if row.response_id in seen:
        duplicate = DataFormatError(
            path, f"dialogue {dialogue_id} has response_id {row.response_id} twice "
            f"(also at {seen[row.response_id]})", record=row.record, field="response_id")
        break
      seen[row.response_id] = row.record
    if duplicate is not None:
      bad(duplicate)
      continue
    dialogues.append(Dialogue(index=dialogue_id, turns=tuple(r.turn for r in group)))
  return dialogues


# ---------------------------------------------------------------- files

def detect_format(data: bytes) -> str:
  """'parquet', 'direct' (list of dialogues) or 'hf' (rows), from the first bytes."""
  if data[:4] == b"PAR1":
    return "parquet"
  head = data.lstrip(b"\xef\xbb\xbf \t\r\n")  # BOM, whitespace
  if head[:1] == b"[":
    # A list of dialogues starts "[[" (maybe with whitespace); a list of rows "[{".
    rest = head[1:].lstrip()
    return "direct" if rest[:1] in (b"[", b"]") else "hf"
  return "hf"


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Dialogue]:
  """Reads one ProsocialDialog file in either format (local path or gs://)."""
  return read_files([path], skip_bad_records=skip_bad_records)


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Dialogue]:
  """Reads several files of one split (e.g. Parquet shards); HF rows are grouped across files."""
  bad = BadRecords(skip_bad_records)
  dialogues: list[Dialogue] = []
  rows: list[_Row] = []
  bad_dialogues: set[int] = set()
  paths = [os.fspath(p) for p in paths]
  for path in paths:
    data = fileio.read_bytes(path)
    if detect_format(data) == "direct":
      decoded = fileio.parse_json(path, fileio.decode_utf8(path, data),
                                  expected="one JSON list of dialogues (direct download)")
      dialogues.extend(parse_dialogues(decoded, path, bad=bad))
      continue
    for record, raw in _hf_records(path, data, bad):
      try:
        rows.append(_hf_row(path, record, raw))
      except DataFormatError as e:
        bad(e)
        # Leave out the row's whole dialogue when its id can still be read.
        if isinstance(raw, dict) and isinstance(raw.get("dialogue_id"), int):
          bad_dialogues.add(raw["dialogue_id"])
  if rows:
    where = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more)"
    dialogues.extend(group_rows(where, (r for r in rows if r.dialogue_id not in bad_dialogues), bad))
  bad.report(", ".join(paths))
  return ReadResult(dialogues, bad.errors, paths)


def read_dialogues(path: str | os.PathLike) -> ReadResult[Dialogue]:
  """Reads one file, raising on the first bad record (the skeleton's name for read_file)."""
  return read_file(path)


def accept_file(name: str) -> bool:
  return name.lower().endswith(DATA_SUFFIXES)


def split_files(split: str, data_root: str | os.PathLike | None = None) -> list[str]:
  folder = data_root_lib.corpus_dir(CORPUS, data_root)
  return data_root_lib.find_split_files(folder, split, accept=accept_file, multiple=True)


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Dialogue]:
  """Reads `split` (train / validation / test) of ProsocialDialog from the data root.

  Several files may mark one split (e.g. Parquet shards `train-00000-of-00002.parquet`);
  they are read together.
  """
  return read_files(split_files(split, data_root), skip_bad_records=skip_bad_records)
