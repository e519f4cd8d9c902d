"""Record types shared by the readers, and what a reader returns.

ProsocialDialog has its own richer types (readers/prosocial_dialog.py); every
casual corpus becomes a list of `Conversation`s.
"""

from __future__ import annotations

import dataclasses
from typing import Generic, Iterator, TypeVar

from prosocial_jax.data.errors import DataFormatError

T = TypeVar("T")


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


def alternate_responses(n: int, first: int = 1) -> tuple[int, ...]:
  """Every other utterance from `first` on: the second speaker's turns by default."""
  return tuple(range(first, n, 2))


@dataclasses.dataclass
class ReadResult(Generic[T]):
  """The records read from one or more files, and the bad records skipped (if asked to skip).

  Behaves as a read-only sequence of the records.
  """
  records: list[T]
  skipped: list[DataFormatError] = dataclasses.field(default_factory=list)
  paths: list[str] = dataclasses.field(default_factory=list)

  def __len__(self) -> int:
    return len(self.records)

  def __iter__(self) -> Iterator[T]:
    return iter(self.records)

  def __getitem__(self, index):
    return self.records[index]

  @property
  def skipped_count(self) -> int:
    return len(self.skipped)
