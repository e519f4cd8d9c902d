"""How a corpus file becomes records: the one guarded read loop and what it is built from.

A corpus module declares two things (see any of them, e.g. toxichat.py):

* the file's *format*: a function `(path, bad) -> (key, raw value)` pairs — JSON lines,
  a JSON list or object, text lines, CSV/TSV rows — picked from this module or written
  for a release with its own shape;
* `parse(path, index, key, raw value) -> record`, which raises a DataFormatError
  naming the file, the record and the field for anything that breaks the format.

`read_records` runs them over a split's files: every problem becomes a DataFormatError
naming the file, the record (line, row, dialogue, ...) and the field; with
`skip_bad_records` the bad records are kept out, counted, logged and returned
(`ReadResult.skipped`) instead. A problem with a whole file (not UTF-8, not JSON, a
wrong header, empty, no records at all) always raises. Records a corpus leaves out on
purpose (e.g. Social Chemistry's RoTs marked bad) are counted too (`ReadResult.left_out`),
so every record of a file is accounted for: kept, skipped or left out. Files are read
through `tf.io.gfile`, so a `gs://` data root works.

Lines end at LF, CRLF or CR only (as Python's universal newlines, and ParlAI's
readers): never at the other characters `str.splitlines` breaks at (U+2028, U+0085,
form feed, ...), which JSON allows raw inside a string.

The record types several corpora share live here too: `Conversation` (every casual
corpus) and `NormExample` (the social-norm corpora).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import re
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

import tensorflow as tf

from prosocial_jax.data.errors import BadRecords, DataFormatError

logger = logging.getLogger("prosocial_jax.data")
T = TypeVar("T")
# A file format: (path, bad records) -> (key, raw value) pairs. The key is what the
# record is called in the file (a line number, a list position, an object key).
Format = Callable[[str, BadRecords], Iterable[tuple[Any, Any]]]
# (path, index of the record among all read so far, key, raw value) -> record, or None
# for a record the corpus leaves out on purpose (never for a bad one: that raises).
Parse = Callable[[str, int, Any, Any], Any]


# ---------------------------------------------------------------- record types

@dataclasses.dataclass
class ReadResult(Generic[T]):
  """The records read from one or more files, the bad records skipped (if asked to skip)
  and how many records the corpus left out on purpose.

  Behaves as a read-only sequence of the records.
  """
  records: list[T]
  skipped: list[DataFormatError] = dataclasses.field(default_factory=list)
  paths: list[str] = dataclasses.field(default_factory=list)
  left_out: int = 0

  def __len__(self) -> int:
    return len(self.records)

  def __iter__(self) -> Iterator[T]:
    return iter(self.records)

  def __getitem__(self, index):
    return self.records[index]

  @property
  def skipped_count(self) -> int:
    return len(self.skipped)


@dataclasses.dataclass(frozen=True)
class Conversation:
  """One casual dialogue.

  utterances: the turns in order, whitespace as in the file.
  responses: indices of the utterances a dialogue agent learns to say — the side
    ParlAI's default teacher for the corpus plays (e.g. the listener in
    EmpatheticDialogues, the wizard in Wizard of Wikipedia, both sides in
    DailyDialog). Index 0 is never a response: a response needs a context.
  """
  index: int
  id: str
  utterances: tuple[str, ...]
  responses: tuple[int, ...]

  @property
  def utterance_count(self) -> int:
    return len(self.utterances)


def alternate_responses(n: int, first: int = 1) -> tuple[int, ...]:
  """Every other utterance from `first` on: the second speaker's turns by default."""
  return tuple(range(first, n, 2))


@dataclasses.dataclass(frozen=True)
class NormExample:
  """A social-norm training pair.

  situation: the model input (a situation; for MIC the prompt and the reply).
  target: what the model learns to write (a rule-of-thumb or a judgment).
  id: the release's id for the row, or its line number.
  split: train / validation / test, for a release that keeps every split in one file.
  """
  situation: str
  target: str
  id: str
  question: str | None = None  # MIC: the prompt ...
  answer: str | None = None    # ... and the chatbot's reply, kept apart for the dialogue format
  split: str | None = None

  @property
  def utterances(self) -> tuple[str, ...]:
    """The row as a dialogue: MIC's prompt and reply, else the situation alone."""
    if self.question is not None and self.answer is not None:
      return (self.question, self.answer)
    return (self.situation,)

  @property
  def utterance_count(self) -> int:
    return 1


# ---------------------------------------------------------------- the read loop

def guarded(bad: BadRecords, parse: Callable[[], T]) -> T | None:
  """Runs `parse`; a DataFormatError goes to `bad` (raised, or kept and None returned)."""
  try:
    return parse()
  except DataFormatError as e:
    bad(e)
    return None


def read_records(paths: Iterable[str | os.PathLike], file_format: Format, parse: Parse, *,
                 skip_bad_records: bool = False) -> ReadResult:
  """Reads every record of `paths` (in order) with `file_format` and `parse`.

  A record's index counts every record read before it in these files, bad ones included,
  so skipping a bad record does not renumber the others. A file without a single record
  (good or bad) is an error: no release has one.
  """
  bad = BadRecords(skip_bad_records)
  paths = [os.fspath(p) for p in paths]
  records = []
  index = left_out = 0
  for path in paths:
    seen, errors_before_file = 0, bad.count
    for key, raw in file_format(path, bad):
      seen += 1
      errors = bad.count
      parsed = guarded(bad, lambda: parse(path, index, key, raw))
      index += 1
      if parsed is not None:
        records.append(parsed)
      elif bad.count == errors:
        left_out += 1
    if not seen and bad.count == errors_before_file:
      raise DataFormatError(path, "the file holds no records")
  bad.report(", ".join(paths))
  if left_out:
    logger.info("Left out %d record(s) of %s that the corpus does not use (see its reader's "
                "docstring).", left_out, ", ".join(paths))
  return ReadResult(records, bad.errors, paths, left_out)


def reader(file_format: Format, parse: Parse) -> Callable[..., ReadResult]:
  """`read_files(paths, *, skip_bad_records=False)` for a corpus's format and record parser."""
  def read_files(paths: Iterable[str | os.PathLike], *, skip_bad_records: bool = False) -> ReadResult:
    return read_records(paths, file_format, parse, skip_bad_records=skip_bad_records)
  return read_files


# ---------------------------------------------------------------- raw files

_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean",
                    int: "number", float: "number", type(None): "null"}


def json_type(value: Any) -> str:
  """The JSON name of a decoded value's type ("object", "array", ...), for messages."""
  return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def read_bytes(path: str) -> bytes:
  if not tf.io.gfile.exists(path):
    raise DataFormatError(path, "file not found")
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def decode_utf8(path: str, data: bytes) -> str:
  """The file's text; bytes that are not UTF-8 are an error naming the line and byte."""
  try:
    return data.decode("utf-8-sig")  # -sig: a BOM written by a spreadsheet tool is not data
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise DataFormatError(path, f"not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                          "convert the file to UTF-8", record=f"line {line}") from None


def read_text(path: str) -> str:
  """The whole file as text; an empty (or all-whitespace) file is an error."""
  text = decode_utf8(path, read_bytes(path))
  if not text.strip():
    raise DataFormatError(path, "the file is empty")
  return text


# JSON nested deeper than this cannot be decoded (Python's recursion limit); no release
# nests more than a few levels.
JSON_TOO_DEEP = "nested too deeply to decode (hundreds of levels of [ or {)"


def parse_json(path: str, text: str, *, expected: str) -> Any:
  """Decodes a whole-file JSON document; `expected` describes it for the JSON-lines hint."""
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    hint = ""
    if e.msg == "Extra data" and e.lineno > 1:
      hint = (f"; this looks like JSON Lines (one record per line), but this format is "
              f"{expected}")
    raise DataFormatError(path, f"invalid JSON: {e.msg}{hint}",
                          record=f"line {e.lineno} column {e.colno}") from None
  except RecursionError:
    raise DataFormatError(path, f"invalid JSON: {JSON_TOO_DEEP}") from None


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
  """The lines of `text`, split at LF, CRLF or CR only (see the module docstring)."""
  lines = _LINE_BREAK.split(text)
  return lines[:-1] if lines and lines[-1] == "" else lines


def iter_text_lines(text: str) -> Iterator[tuple[int, str]]:
  """Yields (line number, line) for each non-blank line."""
  for number, line in enumerate(split_lines(text), start=1):
    if line.strip():
      yield number, line


def iter_json_lines(path: str, text: str, bad: BadRecords) -> Iterator[tuple[int, Any]]:
  """Yields (line number, decoded value) for each non-blank line; bad lines go to `bad`."""
  for number, line in iter_text_lines(text):
    try:
      value = json.loads(line)
    except json.JSONDecodeError as e:
      bad(DataFormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", record=f"line {number}"))
      continue
    except RecursionError:
      bad(DataFormatError(path, f"invalid JSON: {JSON_TOO_DEEP}", record=f"line {number}"))
      continue
    yield number, value


def iter_delimited(path: str, text: str, *, delimiter: str, required: Sequence[str],
                   bad: BadRecords) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields (line number, row) of a CSV/TSV file with a header line.

  Quoted fields (as pandas writes them) may hold delimiters and newlines. A row
  with a different number of fields than the header is a bad record.
  """
  rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
  try:
    header = next(rows)
  except StopIteration:
    raise DataFormatError(path, "the file is empty; expected a header line") from None
  except csv.Error as e:
    raise DataFormatError(path, f"unparsable header line: {e}", record="line 1") from None
  missing = [name for name in required if name not in header]
  if missing:
    raise DataFormatError(path, f"the header has no column(s) {missing}; found {header}",
                          record="line 1", field=missing[0])
  while True:
    try:
      fields = next(rows)
    except StopIteration:
      return
    except csv.Error as e:
      bad(DataFormatError(path, f"unparsable line: {e}", record=f"line {rows.line_num}"))
      continue
    if not fields:
      continue
    if len(fields) != len(header):
      bad(DataFormatError(path, f"expected {len(header)} fields (as in the header), got {len(fields)}",
                          record=f"line {rows.line_num}"))
      continue
    yield rows.line_num, dict(zip(header, fields))


# ---------------------------------------------------------------- file formats

def json_lines(path: str, bad: BadRecords) -> Iterator[tuple[int, Any]]:
  """JSON Lines: (line number, decoded line); a line that does not decode is a bad record."""
  return iter_json_lines(path, read_text(path), bad)


def json_document(container: type, what: str, shape: str = "") -> Format:
  """One JSON list (keys: positions) or object (keys: its keys) of `what` per file.

  `shape` adds to the message when the top level has the wrong type, e.g. " (id -> conversation)".
  """
  kind = "object" if container is dict else "list"

  def file_format(path: str, bad: BadRecords) -> Iterable[tuple[Any, Any]]:
    del bad  # A document that does not decode has no records to skip to.
    data = parse_json(path, read_text(path), expected=f"one JSON {kind} of {what}")
    if not isinstance(data, container):
      raise DataFormatError(path, f"the top level must be a JSON {kind} of {what}{shape}, got "
                            f"{json_type(data)}")
    return data.items() if isinstance(data, dict) else enumerate(data)
  return file_format


def delimited(delimiter: str, required: Sequence[str]) -> Format:
  """CSV/TSV with a header line holding at least `required`: (line number, row dict)."""
  def file_format(path: str, bad: BadRecords) -> Iterator[tuple[int, dict[str, str]]]:
    return iter_delimited(path, read_text(path), delimiter=delimiter, required=required, bad=bad)
  return file_format


# ---------------------------------------------------------------- fields of a record

def unicode_problem(text: str) -> str | None:
  """Why `text` is no valid Unicode text (a lone surrogate: JSON may escape half of a
  UTF-16 pair, e.g. "\\ud83d"), or None. Such text cannot be tokenized nor written."""
  if text.isascii():
    return None
  try:
    text.encode("utf-8")
  except UnicodeEncodeError as e:
    return (f"not valid Unicode text: a lone surrogate {text[e.start]!r} at character "
            f"{e.start} (half of an escaped UTF-16 pair?)")
  return None


class Fields:
  """Typed access to one record's fields; problems become DataFormatErrors naming the place."""

  def __init__(self, path: str, record: str, values: Any):
    self.path = path
    self.record = record
    if not isinstance(values, dict):
      raise DataFormatError(path, f"expected a JSON object, got {json_type(values)}", record=record)
    self.values = values

  def error(self, field: str, problem: str) -> DataFormatError:
    return DataFormatError(self.path, problem, record=self.record, field=field)

  def string(self, field: str, *, required: bool = False, nonempty: bool = False) -> str | None:
    if field not in self.values:
      if required:
        raise self.error(field, "missing")
      return None
    value = self.values[field]
    if value is None and not required:
      return None
    if not isinstance(value, str):
      raise self.error(field, f"expected a string, got {json_type(value)}")
    if nonempty and not value.strip():
      raise self.error(field, "empty")
    problem = unicode_problem(value)
    if problem:
      raise self.error(field, problem)
    return value

  def strings(self, field: str, *, required: bool = False) -> tuple[str, ...] | None:
    if field not in self.values and required:
      raise self.error(field, "missing")
    value = self.values.get(field)
    if value is None and not required:
      return None
    if not isinstance(value, list):
      raise self.error(field, f"expected a list of strings{'' if required else ' or null'}, "
                              f"got {json_type(value)}")
    for k, item in enumerate(value):
      if not isinstance(item, str):
        raise self.error(field, f"item {k}: expected a string, got {json_type(item)}")
      problem = unicode_problem(item)
      if problem:
        raise self.error(field, f"item {k}: {problem}")
    return tuple(value)

  def boolean(self, field: str) -> bool | None:
    value = self.values.get(field)
    if value is not None and not isinstance(value, bool):
      raise self.error(field, f"expected true/false, got {json_type(value)}")
    return value

  def integer(self, field: str, *, required: bool = False) -> int | None:
    if field not in self.values:
      if required:
        raise self.error(field, "missing")
      return None
    value = self.values[field]
    # bool is an int in Python, but `true` is not a number in the data.
    if isinstance(value, bool) or not isinstance(value, int):
      raise self.error(field, f"expected an integer, got {json_type(value)}")
    return value

  def list(self, field: str, *, required: bool = True, nonempty: bool = False) -> list[Any]:
    if field not in self.values:
      if required:
        raise self.error(field, "missing")
      return []
    value = self.values[field]
    if not isinstance(value, list):
      raise self.error(field, f"expected a list, got {json_type(value)}")
    if nonempty and not value:
      raise self.error(field, "empty list")
    return value

  def texts(self, field: str, key: str, *, item: str) -> list[str]:
    """The non-empty string `key` of every object in the non-empty list `field` (e.g. a
    dialogue's utterances); errors name an object `<record>, <item> <position>`."""
    return [Fields(self.path, f"{self.record}, {item} {k}", value).string(key, required=True,
                                                                         nonempty=True)
            for k, value in enumerate(self.list(field, nonempty=True))]

  def object(self, field: str, *, required: bool = True) -> dict[str, Any] | None:
    if field not in self.values:
      if required:
        raise self.error(field, "missing")
      return None
    value = self.values[field]
    if not isinstance(value, dict):
      raise self.error(field, f"expected a JSON object, got {json_type(value)}")
    return value

  def choice(self, field: str, choices: Sequence[str]) -> str:
    value = self.string(field, required=True)
    if value not in choices:
      raise self.error(field, f"unknown value {value!r}; expected one of {list(choices)}")
    return value
