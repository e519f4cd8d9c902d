"""The text formats the models read and write — defined once, with their parsers.

Context (every task's input): the dialogue history, oldest utterance first, each
utterance after a speaker mark, joined by one space:

    "User: I skipped my friend's party. Bot: He might feel hurt. User: He'll get over it."

Marks are counted back from the end: the last utterance (the one being judged or
answered) is `User:`, the one before it `Bot:`, and so on, so the same text gets
the same mark whatever the length of the history. Runs of whitespace (including
newlines) inside an utterance become one space: plain ASCII words, a colon and
single spaces survive any SentencePiece model, a pretrained T5 vocabulary
included (its normalizer would turn a newline into a space anyway). Contexts are
cut from the LEFT to the feature length when tokenized (tasks/preprocessors.py),
so the most recent turns survive.

Targets:
* Canary: `"<safety label> <rot 1>, <rot 2>"`; the label alone for casual turns or
  when there are no RoTs (the paper's rule; RoTs joined by ", ").
* RoTs alone: `"<rot 1>, <rot 2>"`.
* Prost, RoT then response: `"RoT: <rot 1>, <rot 2> Response: <response>"`; when the
  turn has no RoTs, the bare response. So the casual corpora's targets (bare
  utterances) fit the same format, and `parse_prost_output` reads both.
* Prost with the gold RoTs given: the input is the context followed by
  `" RoT: <rot 1>, <rot 2>"` (at the end, so left truncation keeps it).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from prosocial_jax.data.labels import CASUAL, SAFETY_LABELS

USER_MARK = "User:"
BOT_MARK = "Bot:"
UTTERANCE_SEPARATOR = " "
ROT_SEPARATOR = ", "
ROT_MARK = "RoT:"
RESPONSE_MARK = "Response:"


def normalize_text(text: str) -> str:
  """Strips and collapses every run of whitespace (newlines, tabs) into one space."""
  return " ".join(text.split())


def format_history(utterances: Sequence[str]) -> str:
  """Joins utterances (oldest first) with speaker marks; the last one is `User:`."""
  n = len(utterances)
  marked = []
  for k, utterance in enumerate(utterances):
    mark = USER_MARK if (n - 1 - k) % 2 == 0 else BOT_MARK
    text = normalize_text(utterance)
    marked.append(f"{mark} {text}" if text else mark)  # an empty utterance: the mark alone
  return UTTERANCE_SEPARATOR.join(marked)


def context_text(context: str | Sequence[str]) -> str:
  """A caller's dialogue context as the tasks write it (inference: Canary, Prost).

  A list of utterances (oldest first) is marked and joined by `format_history`. A
  string is one utterance, the user's latest, unless it already starts with a speaker
  mark: then it is a context in this format (e.g. a task's `inputs_pretokenized`) and
  only its whitespace is normalized. An empty context is an error: no task has one.
  """
  if isinstance(context, str):
    text = normalize_text(context)
    if not text:
      raise ValueError("the context is empty")
    return text if text.startswith((USER_MARK, BOT_MARK)) else format_history([text])
  utterances = list(context)
  if not utterances:
    raise ValueError("the context is an empty list of utterances")
  if not all(isinstance(u, str) for u in utterances):
    raise ValueError("every utterance of a context must be a string")
  return format_history(utterances)


def clean_rots(rots: Iterable[str] | None) -> list[str]:
  return [normalize_text(r) for r in (rots or ()) if r and r.strip()]


def join_rots(rots: Iterable[str] | None) -> str:
  return ROT_SEPARATOR.join(clean_rots(rots))


def canary_target(safety_label: str, rots: Iterable[str] | None) -> str:
  """`"<label> <rot>, <rot>"`; the label alone for casual turns or when there are no RoTs."""
  rots = clean_rots(rots)
  if safety_label == CASUAL or not rots:
    return safety_label
  return f"{safety_label} {ROT_SEPARATOR.join(rots)}"


def prost_target(response: str, rots: Iterable[str] | None) -> str:
  """`"RoT: <rots> Response: <response>"`, or the bare response when there are no RoTs."""
  rots = clean_rots(rots)
  response = normalize_text(response)
  if not rots:
    return response
  return f"{ROT_MARK} {ROT_SEPARATOR.join(rots)} {RESPONSE_MARK} {response}"


def gold_rot_context(context: str, rots: Iterable[str] | None) -> str:
  """The context with the gold RoTs appended (`... RoT: <rots>`); unchanged without RoTs."""
  rots = clean_rots(rots)
  if not rots:
    return context
  return f"{context} {ROT_MARK} {ROT_SEPARATOR.join(rots)}"


# A new RoT starts after ", " followed by a capital letter ("It's ...", "You ...");
# commas inside one RoT are usually followed by lower case ("..., even if ...").
_ROT_SPLIT = re.compile(r",\s+(?=[A-Z])")


def split_rots(text: str) -> list[str]:
  """Splits RoTs joined by ", " (a heuristic: a new RoT starts with a capital letter)."""
  text = text.strip()
  return [r for r in (part.strip() for part in _ROT_SPLIT.split(text)) if r] if text else []


def parse_canary_output(text: str) -> tuple[str | None, list[str]]:
  """Splits Canary output into (safety label or None, RoTs).

  The label is recognised when the text starts with one of SAFETY_LABELS (with
  or without a following space); RoTs are split with `split_rots`.
  """
  text = text.strip()
  label = None
  for candidate in SAFETY_LABELS:
    if text.startswith(candidate):
      label, text = candidate, text[len(candidate):].strip()
      break
  return label, split_rots(text)


def parse_prost_output(text: str) -> tuple[list[str], str]:
  """Splits Prost output into (RoTs, response).

  `"RoT: a, b Response: c"` gives (["a", "b"], "c"); text that does not start with
  `RoT:` is a bare response. Output that starts with `RoT:` but never reaches
  `Response:` (e.g. cut off by the length limit) gives the RoTs and "".
  """
  text = text.strip()
  if not text.startswith(ROT_MARK):
    return [], text
  body = text[len(ROT_MARK):]
  rots_text, found, response = body.partition(f" {RESPONSE_MARK}")
  if not found:
    if body.strip().startswith(RESPONSE_MARK):  # "RoT: Response: ..." (no RoTs written)
      return [], body.strip()[len(RESPONSE_MARK):].strip()
    return split_rots(rots_text), ""
  return split_rots(rots_text), response.strip()
