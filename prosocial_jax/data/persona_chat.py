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
first) is left out of the history. A bad line makes its whole dialogue a bad record.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus, split_file_word
from prosocial_jax.data.download import PARLAI_DOWNLOADS, Release, Remote
from prosocial_jax.data.errors import BadRecords, DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://parl.ai/projects/personachat/", "see ParlAI", files=(Remote(
        f"{PARLAI_DOWNLOADS}/personachat/personachat.tgz",
        sha256="507cf8641d333240654798870ea584d854ab5261071c5e3521c20d8fa41d5622",
        keep=r"^(train|valid|test)_self_original\.txt$"),))

SILENCE = "__SILENCE__"
_LINE = re.compile(r"^([0-9]+) (.*)$", re.DOTALL)
_PERSONA = ("your persona:", "partner's persona:")


def _numbering_error(path: str, number: int) -> DataFormatError:
  return DataFormatError(path, "a line must start with its number in the dialogue "
                         "('1 your persona: ...')", record=f"line {number}")


def _dialogues(path: str, bad: BadRecords) -> Iterator[tuple[int, list[tuple[int, str]]]]:
  """(first line number, [(line number, line)]) of each dialogue: a new one starts at `1 `.

  A line without its number before the first dialogue belongs to none, and is a bad
  record of its own.
  """
  lines: list[tuple[int, str]] | None = None
  for number, line in reading.iter_text_lines(reading.read_text(path)):
    match = _LINE.match(line)
    if match and match.group(1).lstrip("0") == "1":  # not int(): a line may hold 5,000 digits
      if lines is not None:
        yield lines[0][0], lines
      lines = []
    if lines is None:
      if not match:
        bad(_numbering_error(path, number))
        continue
      lines = []  # the file starts mid-dialogue
    lines.append((number, line))
  if lines is not None:
    yield lines[0][0], lines


def _dialogue(path: str, index: int, first_line: int,
              lines: list[tuple[int, str]]) -> reading.Conversation:
  utterances: list[str] = []
  responses: list[int] = []
  for number, line in lines:
    match = _LINE.match(line)
    if not match:
      raise _numbering_error(path, number)
    body = match.group(2)
    if body.startswith(_PERSONA):
      continue
    parts = body.split("\t")
    if len(parts) < 2 or not parts[1].strip():
      raise DataFormatError(path, "expected '<partner utterance><TAB><bot reply>...'",
                            record=f"line {number}")
    partner, reply = parts[0].strip(), parts[1].strip()
    if partner and partner != SILENCE:
      utterances.append(partner)
    responses.append(len(utterances))
    utterances.append(reply)
  if not utterances:
    raise DataFormatError(path, "the dialogue has no utterances (persona lines only)",
                          record=f"dialogue starting at line {first_line}")
  # A response needs a context: the bot's opening line (after __SILENCE__) is history only.
  return reading.Conversation(index=index, id=str(index), utterances=tuple(utterances),
                              responses=tuple(r for r in responses if r > 0))


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    lines = []
    for d in rng.dialogues(n, 4, 14, (5, 14)):
      number = 0
      for _ in range(4):
        number += 1
        lines.append(f"{number} your persona: {rng.sentence(4, 8).lower()}")
      for k in range(0, len(d) - 1, 2):
        number += 1
        lines.append(f"{number} {d[k].lower()}\t{d[k + 1].lower()}\t\tcand a|cand b")
    out.write_lines(f"{split_file_word(split)}_self_original.txt", lines)


CORPUS = Corpus(name="persona_chat", role="casual",
                files=r"(train|valid|test)_self_original(_no_cands)?\.txt",
                read_files=reading.reader(_dialogues, _dialogue), release=RELEASE,
                write_synthetic=_write_synthetic)
