"""Errors raised by the data readers: each names the file, the record and the field."""

from __future__ import annotations

import os


class DataFormatError(ValueError):
  """A data file is missing, unparsable, or holds a record that breaks the format.

  The message reads `<file>: <record>: field '<field>': <problem>`, e.g.
  `.../train.json: dialogue 3, turn 1: field 'safety_label': unknown label '__ok__'`.
  The parts are also kept as attributes (`path`, `record`, `field`, `problem`).
  """

  def __init__(self, path: str | os.PathLike, problem: str, *,
               record: str | None = None, field: str | None = None):
    self.path = os.fspath(path)
    self.record = record
    self.field = field
    self.problem = problem
    parts = [self.path]
    if record:
      parts.append(record)
    if field:
      parts.append(f"field {field!r}")
    super().__init__(": ".join(parts) + ": " + problem)


class MissingDataError(FileNotFoundError):
  """A corpus folder or a split file is not where the data-root convention expects it."""


class AmbiguousSplitError(ValueError):
  """Several files in a corpus folder match the same split."""
