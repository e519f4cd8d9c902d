"""Social-norm rows → the examples of the stage-1 tasks (situation → RoT or judgment).

The situation is written as a one-utterance context (`User: <situation>`), and a
MIC prompt and reply as a two-utterance one (`Bot: <prompt> User: <reply>`: the
judged utterance is last, as in Canary's input), so stage 1 and stage 2 read
alike.
"""

from __future__ import annotations

from typing import Any, Iterable

from prosocial_jax.data import formatting
from prosocial_jax.data.readers.norm_records import NormExample


def norm_examples(rows: Iterable[NormExample]) -> list[dict[str, Any]]:
  examples = []
  for row in rows:
    if row.question is not None and row.answer is not None:
      context = formatting.format_history([row.question, row.answer])
    else:
      context = formatting.format_history([row.situation])
    examples.append(dict(context=context, target=formatting.normalize_text(row.target), id=row.id))
  return examples
