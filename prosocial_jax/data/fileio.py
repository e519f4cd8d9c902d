"""Reading raw files (local or gs://) and checking their records' fields.

Every reader goes through these helpers so that every problem becomes a
DataFormatError naming the file, the record (line, row, dialogue, ...) and the
field. Files are read through `tf.io.gfile`, so a `gs://` data root works.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Iterator, Sequence

import tensorflow as tf

from prosocial_jax.data.errors import BadRecords, DataFormatError

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
  try:
    return data.decode("utf-8-sig")  # -sig: a BOM written by a spreadsheet tool is not data
  except UnicodeDecodeError as e:
    raise DataFormatError(path, f"not UTF-8 text (byte {e.start})") from None


def read_text(path: str) -> str:
  return decode_utf8(path, read_bytes(path))


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


def looks_like_json_lines(text: str) -> bool:
  """True when the text is several JSON values, one per line (not one document)."""
  try:
    json.loads(text)
    return False
  except json.JSONDecodeError as e:
    return e.msg == "Extra data"


def iter_json_lines(path: str, text: str, bad: BadRecords) -> Iterator[tuple[int, Any]]:
  """Yields (line number, decoded value) for each non-blank line; bad lines go to `bad`."""
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    try:
      yield number, json.loads(line)
    except json.JSONDecodeError as e:
      bad(DataFormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", record=f"line {number}"))


def iter_delimited(path: str, text: str, *, delimiter: str, required: Sequence[str],
                   bad: BadRecords) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields (line number, row) of a CSV/TSV file with a header line.

  Quoted fields (as pandas writes them) may hold delimiters and newlines. A row
  with a different number of fields than the header is a bad record.
  """
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
  try:
    header = next(reader)
  except StopIteration:
    raise DataFormatError(path, "the file is empty; expected a header line") from None
  missing = [name for name in required if name not in header]
  if missing:
    raise DataFormatError(path, f"the header has no column(s) {missing}; found {header}",
                          record="line 1", field=missing[0])
  while True:
    try:
      fields = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      bad(DataFormatError(path, f"unparsable line: {e}", record=f"line {reader.line_num}"))
      continue
    if not fields:
      continue
    if len(fields) != len(header):
      bad(DataFormatError(path, f"expected {len(header)} fields (as in the header), got {len(fields)}",
                          record=f"line {reader.line_num}"))
      continue
    yield reader.line_num, dict(zip(header, fields))


def iter_parquet_rows(path: str, data: bytes) -> Iterator[dict[str, Any]]:
  """Rows of a Parquet file as Python dicts (pyarrow comes with tensorflow-datasets)."""
  import pyarrow.parquet as pq  # Imported here: only Parquet users pay for it.
  try:
    table = pq.read_table(io.BytesIO(data))
  except Exception as e:  # pyarrow raises several error types for a damaged file.
    raise DataFormatError(path, f"unreadable Parquet file: {e}") from None
  yield from table.to_pylist()


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


def guarded(bad: BadRecords, parse: Callable[[], Any]) -> Any | None:
  """Runs `parse`; a DataFormatError goes to `bad` (raised, or kept and None returned)."""
  try:
    return parse()
  except DataFormatError as e:
    bad(e)
    return None


def read_json_list_files(paths: Sequence[str], parse_record: Callable[[str, int, Any], Any], *,
                         what: str, skip_bad_records: bool) -> tuple[list[Any], BadRecords]:
  """Records of files that each hold one JSON list (ParlAI's BST / WoW releases).

  `parse_record(path, index, value)` turns one list element into a record or
  raises DataFormatError; with `skip_bad_records` such records are counted instead.
  """
  bad = BadRecords(skip_bad_records)
  records: list[Any] = []
  for path in paths:
    data = parse_json(path, read_text(path), expected=f"one JSON list of {what}")
    if not isinstance(data, list):
      raise DataFormatError(path, f"the top level must be a JSON list of {what}, got "
                            f"{json_type(data)}")
    for i, value in enumerate(data):
      record = guarded(bad, lambda: parse_record(path, i, value))
      if record is not None:
        records.append(record)
  bad.report(", ".join(paths))
  return records, bad
