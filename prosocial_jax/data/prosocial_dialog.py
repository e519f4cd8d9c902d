"""ProsocialDialog (Kim et al., EMNLP 2022) in both public formats, found from the content.

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
(tasks/prosocial_dialog.py, tfds_builder.py). Unknown extra fields are ignored.

Every problem raises DataFormatError naming the file, the record (dialogue / turn,
or line / row) and the field. With `skip_bad_records`, a dialogue with a bad turn
(or a bad row) is left out whole — a gap would corrupt the history of the turns
after it — and the error is returned in `ReadResult.skipped`; the good rows left out
with it are counted in `ReadResult.left_out` and logged. (A JSON line that does not
parse at all cannot name its dialogue; only that line is left out.) A file of one
row (a JSON-lines file of one line) is read as that row.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import SPLITS, Corpus, split_file_word
from prosocial_jax.data.download import Release, Remote
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.labels import CASUAL, NEEDS_INTERVENTION, SAFETY_LABELS
from prosocial_jax.data.reading import ReadResult

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

_HUGGING_FACE = "https://huggingface.co/datasets/allenai/prosocial-dialog/resolve/main"

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://huggingface.co/datasets/allenai/prosocial-dialog", "CC-BY-4.0",
    files=tuple(Remote(f"{_HUGGING_FACE}/{split_file_word(split)}.json") for split in SPLITS),
    variants={"direct": (Remote(
        "https://drive.google.com/u/1/uc?id=1d-987AjyfVdFnohBqQ3yaHt-b5mVezHa&export=download&confirm=t",
        "112e402e283949cbc36b67a86877c8aea098a7fe40fd3e180095e1e147958eba",
        name="prosocial_dialog_v1.tar.gz", keep=r"^(train|valid|test)\.json$"),)})

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

  @property
  def utterance_count(self) -> int:
    """Each turn's utterance, and its response when it has one."""
    return sum(1 + bool(t.response) for t in self.turns)


def _annotations(f: reading.Fields) -> dict[str, Any]:
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
    raise DataFormatError(path, f"a turn must be a JSON object, got {reading.json_type(turn)}",
                          record=record)
  f = reading.Fields(path, record, turn)
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
                          f"{reading.json_type(dialogue)}{hint}", record=record)
  if not dialogue:
    raise DataFormatError(path, "the dialogue has no turns", record=record)
  return Dialogue(index=i, turns=tuple(_direct_turn(path, i, j, t) for j, t in enumerate(dialogue)))


# ---------------------------------------------------------------- Hugging Face rows

@dataclasses.dataclass(frozen=True)
class _Row:
  dialogue_id: int
  response_id: int
  record: str
  turn: Turn


def _hf_row(path: str, record: str, row: Any) -> _Row:
  f = reading.Fields(path, record, row)
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
      raise DataFormatError(path, f"expected a column (a list), got {reading.json_type(column)}",
                            field=name)
    lengths[name] = len(column)
  n = lengths.get("context", 0)
  for name, length in lengths.items():
    if length != n:
      raise DataFormatError(path, f"the column has {length} values but 'context' has {n}", field=name)
  for k in range(n):
    yield f"row {k}", {name: column[k] for name, column in data.items()}


def _is_one_row(value: dict[str, Any]) -> bool:
  """A JSON object that is one row (a JSON-lines file of one line), not columns."""
  return not isinstance(value.get("context"), list) and any(
      name in value for name in HF_REQUIRED)


def _parquet_rows(path: str, data: bytes) -> Iterator[dict[str, Any]]:
  """Rows of a Parquet file as Python dicts (pyarrow comes with tensorflow-datasets)."""
  import pyarrow.parquet as pq  # Imported here: only Parquet users pay for it.
  try:
    table = pq.read_table(io.BytesIO(data))
  except Exception as e:  # pyarrow raises several error types for a damaged file.
    raise DataFormatError(path, f"unreadable Parquet file: {e}") from None
  yield from table.to_pylist()


def _hf_records(path: str, data: bytes, bad: BadRecords) -> Iterable[tuple[str, Any]]:
  """(record, row) pairs of a Hugging Face file in any of its encodings."""
  if data[:4] == b"PAR1":
    for k, row in enumerate(_parquet_rows(path, data)):
      yield f"row {k}", row
    return
  text = reading.decode_utf8(path, data)
  if not text.strip():
    raise DataFormatError(path, "the file is empty")
  try:
    decoded = json.loads(text)
  except json.JSONDecodeError as e:
    if e.msg != "Extra data":
      reading.parse_json(path, text, expected="one JSON document")  # raises, naming the place
    # Several JSON values, one per line: JSON lines.
    for number, row in reading.iter_json_lines(path, text, bad):
      yield f"line {number}", row
    return
  except RecursionError:
    raise DataFormatError(path, f"invalid JSON: {reading.JSON_TOO_DEEP}") from None
  if isinstance(decoded, dict) and _is_one_row(decoded):
    # A JSON-lines file of one line (or one row written as a whole document).
    lines = list(reading.iter_text_lines(text))
    yield (f"line {lines[0][0]}" if len(lines) == 1 else "row 0"), decoded
  elif isinstance(decoded, dict):
    yield from _rows_from_columns(path, decoded)
  elif not isinstance(decoded, list):
    raise DataFormatError(path, "the top level must be a JSON list of dialogues (direct download), "
                          "or rows / an object of columns (Hugging Face), got "
                          f"{reading.json_type(decoded)}")
  else:
    for k, row in enumerate(decoded):
      yield f"row {k}", row


def _group_rows(path: str, rows: Iterable[_Row], bad: BadRecords) -> list[Dialogue]:
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

def _is_direct_download(data: bytes) -> bool:
  """A list of dialogues starts "[[" (maybe with whitespace); rows, Parquet or JSON lines do not."""
  head = data.lstrip(b"\xef\xbb\xbf \t\r\n")  # BOM, whitespace
  return head[:1] == b"[" and head[1:].lstrip()[:1] in (b"[", b"]")


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Dialogue]:
  """Reads the files of one split, each in either format.

  Hugging Face rows are grouped into dialogues across the files (Parquet shards
  `train-00000-of-00002.parquet`, ... hold one split), so this is not the shared
  read loop of reading.py: a dialogue is only complete once every file is read.
  """
  bad = BadRecords(skip_bad_records)
  dialogues: list[Dialogue] = []
  rows: list[_Row] = []
  bad_dialogues: set[int] = set()
  paths = [os.fspath(p) for p in paths]
  for path in paths:
    data = reading.read_bytes(path)
    if _is_direct_download(data):
      decoded = reading.parse_json(path, reading.decode_utf8(path, data),
                                   expected="one JSON list of dialogues (direct download)")
      if not decoded:
        raise DataFormatError(path, "the file holds no records (an empty list of dialogues)")
      for i, dialogue in enumerate(decoded):
        parsed = reading.guarded(bad, lambda: _direct_dialogue(path, i, dialogue))
        if parsed is not None:
          dialogues.append(parsed)
      continue
    seen, errors_before_file = 0, bad.count
    for record, raw in _hf_records(path, data, bad):
      seen += 1
      try:
        rows.append(_hf_row(path, record, raw))
      except DataFormatError as e:
        bad(e)
        # Leave out the row's whole dialogue when its id can still be read.
        if isinstance(raw, dict) and isinstance(raw.get("dialogue_id"), int):
          bad_dialogues.add(raw["dialogue_id"])
    if not seen and bad.count == errors_before_file:
      raise DataFormatError(path, "the file holds no records")
  # The good rows of a dialogue with a bad row are left out with it, and counted.
  left_out = sum(r.dialogue_id in bad_dialogues for r in rows)
  if rows:
    where = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more)"
    kept = [r for r in rows if r.dialogue_id not in bad_dialogues]
    duplicates_before = bad.count
    grouped = _group_rows(where, kept, bad)
    # A dialogue with a repeated response_id: one row is the bad record, the rest left out.
    left_out += len(kept) - sum(len(d.turns) for d in grouped) - (bad.count - duplicates_before)
    dialogues.extend(grouped)
  bad.report(", ".join(paths))
  if left_out:
    logging.getLogger("prosocial_jax.data").warning(
        "Left out %d good row(s) of %s with the dialogues their bad rows belong to.",
        left_out, ", ".join(paths))
  return ReadResult(dialogues, bad.errors, paths, left_out)


# ---------------------------------------------------------------- synthetic data

_LEVELS = (CASUAL,) + SAFETY_LABELS[1:4]  # by the number of "needs caution" votes


def _label_and_votes(rng) -> tuple[str, list[str]]:
  """Three annotators' votes, and the label the paper's rule gives them."""
  if rng.random() < 0.1:
    votes = ["needs intervention"] + rng.choices(["casual", "needs caution"], k=2)
  else:
    votes = rng.choices(["casual", "needs caution"], k=3)
  label = NEEDS_INTERVENTION if "needs intervention" in votes else _LEVELS[votes.count("needs caution")]
  rng.shuffle(votes)
  return label, votes


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    dialogues = []
    for _ in range(n):
      turns = []
      for _ in range(rng.randint(2, 6)):
        label, votes = _label_and_votes(rng)
        turns.append({
            "text": rng.sentence(8, 30), "labels": [rng.sentence(15, 45)],
            "rots": [] if label == CASUAL else [rng.rot() for _ in range(rng.randint(1, 3))],
            "safety_label": label, "safety_annotations": votes,
            "safety_annotation_reasons": [rng.sentence(5, 12) for _ in votes],
            "source": rng.choice(["socialchemistry", "sbic", "ethics_amt", "ethics_reddit"]),
            "etc": "", "episode_done": False})
      turns[-1]["episode_done"] = True
      dialogues.append(turns)
    name = split_file_word(split) + ".json"
    if out.prosocial_format == "direct":
      out.write_json(name, dialogues)
      continue
    lines = []
    for d, turns in enumerate(dialogues):
      for r, t in enumerate(turns):
        row = {"context": t["text"], "response": t["labels"][0]}
        row.update({k: t[k] for k in ("rots", "safety_label", "safety_annotations",
                                       "safety_annotation_reasons", "source", "etc")})
        row.update(dialogue_id=d, response_id=r, episode_done=t["episode_done"])
        lines.append(json.dumps(row))
    out.write_lines(name, lines)


CORPUS = Corpus(name="prosocial_dialog", role="prosocial", files=r".*\.(json|jsonl|parquet)",
                read_files=read_files, release=RELEASE, write_synthetic=_write_synthetic,
                several_files_per_split=True)
