"""PersonaChat / ConvAI2 (Zhang et al. 2018; Dinan et al. 2019) in ParlAI's text format.

`personachat.tgz` (ParlAI) holds `<split>_<persona variant>_<original|revised>.txt`;
this reader takes the ParlAI default, `train_self_original.txt`,
`valid_self_original.txt` and `test_self_original.txt` (ConvAI2's
`*_self_original_no_cands.txt` also read; keep one of the two). Each line starts
with its number in the dialogue, which restarts at 1 for a new dialogue:

    1 your persona: i like to remodel homes.
    ...
    5 hi , how are you doing ?<TAB>you must be very fast .<TAB><TAB>cand 1|cand 2|...

A dialogue line holds the partner's utterance, then (after a tab) the bot's reply,
then the candidates (ignored). Persona lines are not part of the model input. The
bot's replies are the responses; a partner turn `__SILENCE__` (the bot speaks
first) is left out of the history.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import Conversation, ReadResult

CORPUS = "persona_chat"
SILENCE = "__SILENCE__"
_LINE = re.compile(r"^(\d+) (.*)$")
_PERSONA = ("your persona:", "partner's persona:")
_FILE = re.compile(r"^(train|valid|test)_self_original(_no_cands)?\.txt$")


class _Builder:
  """Collects one dialogue's utterances and which of them are the bot's."""

  def __init__(self, path: str, first_line: int):
    self.path = path
    self.record = f"dialogue starting at line {first_line}"
    self.utterances: list[str] = []
    self.responses: list[int] = []
    self.error: DataFormatError | None = None

  def add(self, number: int, body: str) -> None:
    if body.startswith(_PERSONA):
      return
    parts = body.split("\t")
    if len(parts) < 2 or not parts[1].strip():
      raise DataFormatError(self.path, "expected '<partner utterance><TAB><bot reply>...'",
                            record=f"line {number}")
    partner, reply = parts[0].strip(), parts[1].strip()
    if partner and partner != SILENCE:
      self.utterances.append(partner)
    self.responses.append(len(self.utterances))
    self.utterances.append(reply)

  def build(self, index: int) -> Conversation:
    if not self.utterances:
      raise DataFormatError(self.path, "the dialogue has no utterances (persona lines only)",
                            record=self.record)
    # A response needs a context: the bot's opening line (after __SILENCE__) is history only.
    return Conversation(index=index, id=str(index), utterances=tuple(self.utterances),
                        responses=tuple(r for r in self.responses if r > 0))


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  bad = BadRecords(skip_bad_records)
  conversations: list[Conversation] = []
  paths = [os.fspath(p) for p in paths]
  position = 0

  def close(builder: _Builder | None) -> None:
    nonlocal position
    if builder is None:
      return
    if builder.error is not None:
      bad(builder.error)
    else:
      c = fileio.guarded(bad, lambda: builder.build(position))
      if c is not None:
        conversations.append(c)
    position += 1

  for path in paths:
    builder = None
    for number, line in enumerate(fileio.read_text(path).splitlines(), start=1):
      if not line.strip():
        continue
      match = _LINE.match(line)
      if not match:
        error = DataFormatError(path, "a line must start with its number in the dialogue "
                                "('1 your persona: ...')", record=f"line {number}")
        if builder is None:
          bad(error)
        elif builder.error is None:
          builder.error = error
        continue
      if int(match.group(1)) == 1:
        close(builder)
        builder = _Builder(path, number)
      if builder is None:  # the file starts mid-dialogue
        builder = _Builder(path, number)
      if builder.error is None:
        try:
          builder.add(number, match.group(2))
        except DataFormatError as e:
          builder.error = e  # the whole dialogue is bad; report once it ends
    close(builder)
  bad.report(", ".join(paths))
  return ReadResult(conversations, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  return bool(_FILE.match(name.lower()))


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, skip_bad_records=skip_bad_records)
