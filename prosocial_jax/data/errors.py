"""Errors raised by the data readers: each names the file, the record and the field."""

from __future__ import annotations

import logging
import os

from prosocial_jax.user_errors import UserError


class DataFormatError(UserError, ValueError):
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
    message = ": ".join(parts) + ": " + problem
    # A lone surrogate (an escaped UTF-16 half in JSON) in a record's name would make
    # the message itself unprintable: escape it.
    super().__init__(message.encode("utf-8", "backslashreplace").decode("utf-8"))


class MissingDataError(UserError, FileNotFoundError):
  """A corpus folder or a split file is not where the data-root convention expects it."""


class AmbiguousSplitError(UserError, ValueError):
  """Several files in a corpus folder match the same split."""


class BadRecords:
  """What a reader does with a record that breaks the format.

  By default (`skip=False`) the reader raises the record's DataFormatError. When the
  user asked to skip bad records, the error is kept instead and the reader moves on;
  `report()` then logs how many records were skipped and why, so nothing is dropped
  silently. Readers return the kept errors with their records (`ReadResult.skipped`).
  """

  def __init__(self, skip: bool = False):
    self.skip = skip
    self.errors: list[DataFormatError] = []

  def __call__(self, error: DataFormatError) -> None:
    if not self.skip:
      raise error
    self.errors.append(error)

  @property
  def count(self) -> int:
    return len(self.errors)

  def report(self, what: str, *, shown: int = 5) -> int:
    """Logs a warning naming the skipped records (the first `shown` of them); returns the count."""
    if self.errors:
      lines = "\n  ".join(str(e) for e in self.errors[:shown])
      more = f"\n  ... and {self.count - shown} more" if self.count > shown else ""
      logging.getLogger("prosocial_jax.data").warning(
          "Skipped %d bad record(s) while reading %s:\n  %s%s", self.count, what, lines, more)
    return self.count
