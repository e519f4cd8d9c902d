"""What the stage-1 social-norm readers return: one (input, target) pair per row."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class NormExample:
  """A social-norm training pair.

  situation: the model input (a situation; for MIC the prompt and the reply).
  target: what the model learns to write (a rule-of-thumb or a judgment).
  id: the release's id for the row, or its line number.
  """
  situation: str
  target: str
  id: str
  question: str | None = None  # MIC: the prompt ...
  answer: str | None = None    # ... and the chatbot's reply, kept apart for the dialogue format
