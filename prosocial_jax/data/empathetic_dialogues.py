"""EmpatheticDialogues (Rashkin et al., ACL 2019) in its release format.

`empatheticdialogues.tar.gz` (the authors', mirrored by ParlAI) holds train.csv,
valid.csv and test.csv: a header line

    conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags

then one utterance per line, the lines of a conversation consecutive. The file is
split on every comma — it is not quoted CSV: commas inside text are written
`_comma_` (restored here). Some lines carry a 9th field (inline candidates), which
is ignored. `context` is the emotion, `prompt` the situation; neither goes into the
model input.

The speaker opens, the listener answers: as in ParlAI, the listener's turns (every
second utterance) are the responses. A bad line is left out of its conversation
(with skip_bad_records), not the whole conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus, split_file_word
from prosocial_jax.data.download import PARLAI_DOWNLOADS, Release, Remote
from prosocial_jax.data.errors import BadRecords, DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://github.com/facebookresearch/EmpatheticDialogues", "CC BY-NC 4.0", files=(Remote(
        f"{PARLAI_DOWNLOADS}/empatheticdialogues/empatheticdialogues.tar.gz",
        sha256="240c492cb6199a315722f716bfcc14f13ea6605f1cec67349153b606be92f6f2",
        keep=r"^(train|valid|test)\.csv$"),))

HEADER = ("conv_id", "utterance_idx", "context", "prompt", "speaker_idx", "utterance")
_FIELD_COUNTS = (8, 9)


def _unescape(text: str) -> str:
  return text.replace("_comma_", ",")


def _utterance(path: str, number: int, line: str) -> tuple[str, str]:
  """(conv_id, utterance) of one data line."""
  record = f"line {number}"
  fields = line.split(",")
  if len(fields) not in _FIELD_COUNTS:
    raise DataFormatError(path, f"expected 8 or 9 comma-separated fields, got {len(fields)} "
                          "(a raw comma in the text? the release writes them as _comma_)",
                          record=record)
  conv_id, utterance_idx, utterance = fields[0], fields[1], _unescape(fields[5])
  if not conv_id:
    raise DataFormatError(path, "empty", record=record, field="conv_id")
  if not utterance_idx.strip().isdigit():
    raise DataFormatError(path, f"expected a number, got {utterance_idx!r}", record=record,
                          field="utterance_idx")
  if not utterance.strip():
    raise DataFormatError(path, "empty", record=record, field="utterance")
  return conv_id, utterance


def _conversations(path: str, bad: BadRecords) -> Iterator[tuple[str, list[str]]]:
  """(conv_id, utterances) of each run of lines sharing a conv_id; bad lines go to `bad`."""
  lines = reading.split_lines(reading.read_text(path))
  header = tuple(lines[0].split(",")[:len(HEADER)]) if lines else ()
  if header != HEADER:
    raise DataFormatError(path, f"expected the header {','.join(HEADER)},...; got "
                          f"{lines[0][:80] if lines else 'an empty file'!r}", record="line 1")
  conv_id, utterances = None, []
  for number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    parsed = reading.guarded(bad, lambda: _utterance(path, number, line))
    if parsed is None:
      continue
    if parsed[0] != conv_id:
      if utterances:
        yield conv_id, utterances
      conv_id, utterances = parsed[0], []
    utterances.append(parsed[1])
  if utterances:
    yield conv_id, utterances


def _conversation(path: str, index: int, conv_id: str, utterances: list[str]) -> reading.Conversation:
  del path  # Its lines were checked one by one.
  return reading.Conversation(index=index, id=conv_id, utterances=tuple(utterances),
                              responses=reading.alternate_responses(len(utterances)))


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    lines = ["conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags"]
    for c, d in enumerate(rng.dialogues(n, 2, 6)):
      prompt = rng.sentence(8, 16).replace(",", "_comma_")
      for k, u in enumerate(d):
        lines.append(f"hit:{c}_conv:{2 * c},{k + 1},sentimental,{prompt},{k % 2},"
                     f"{u.replace(',', '_comma_')},5|5|5_2|2|5,")
    out.write_lines(f"{split_file_word(split)}.csv", lines)


CORPUS = Corpus(name="empathetic_dialogues", role="casual", files=r".*\.csv",
                read_files=reading.reader(_conversations, _conversation), release=RELEASE,
                write_synthetic=_write_synthetic)
