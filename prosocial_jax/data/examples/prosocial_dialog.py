"""ProsocialDialog turns → the examples of the prosocial_dialog_* tasks.

A turn's context is the dialogue so far: earlier turns' utterances and their
responses, then this turn's utterance (formatting.format_history). Every example
also carries `dialogue_index` and `turn_index`, to trace it back to the file.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from prosocial_jax.data import formatting
from prosocial_jax.data.readers.prosocial_dialog import Dialogue, Turn


def _turns(dialogues: Iterable[Dialogue]) -> Iterator[tuple[Dialogue, int, Turn, str]]:
  """(dialogue, turn index, turn, context) for every turn, the history rebuilt."""
  for dialogue in dialogues:
    history: list[str] = []
    for j, turn in enumerate(dialogue.turns):
      history.append(turn.text)
      yield dialogue, j, turn, formatting.format_history(history)
      history.append(turn.response or "")


def _example(dialogue: Dialogue, j: int, context: str, target: str, **extra) -> dict[str, Any]:
  return dict(context=context, target=target, dialogue_index=dialogue.index, turn_index=j, **extra)


def canary_examples(dialogues: Iterable[Dialogue]) -> list[dict[str, Any]]:
  """Every turn: context → "<label> <rot>, <rot>" (the label alone when casual)."""
  return [_example(d, j, context, formatting.canary_target(t.safety_label, t.rots),
                   safety_label=t.safety_label, rots=list(t.rots))
          for d, j, t, context in _turns(dialogues)]


def safety_examples(dialogues: Iterable[Dialogue]) -> list[dict[str, Any]]:
  """Every turn: context → its safety label token."""
  return [_example(d, j, context, t.safety_label, safety_label=t.safety_label)
          for d, j, t, context in _turns(dialogues)]


def rot_examples(dialogues: Iterable[Dialogue]) -> list[dict[str, Any]]:
  """Turns with RoTs: context → "<rot>, <rot>" (nothing to learn from a turn without)."""
  return [_example(d, j, context, formatting.join_rots(t.rots), safety_label=t.safety_label)
          for d, j, t, context in _turns(dialogues) if formatting.clean_rots(t.rots)]


def prost_examples(dialogues: Iterable[Dialogue], *, with_rots: bool) -> list[dict[str, Any]]:
  """Turns with a response: context → response, or → "RoT: <rots> Response: <response>".

  The RoTs are the turn's own, whatever its label (casual turns rarely have any; a
  turn without RoTs gets the bare response in both variants).
  """
  return [_example(d, j, context,
                   formatting.prost_target(t.response, t.rots if with_rots else None),
                   safety_label=t.safety_label)
          for d, j, t, context in _turns(dialogues) if t.response and t.response.strip()]


def gold_rot_examples(dialogues: Iterable[Dialogue]) -> list[dict[str, Any]]:
  """Turns with a response: context + " RoT: <gold rots>" → response."""
  return [_example(d, j, formatting.gold_rot_context(context, t.rots),
                   formatting.normalize_text(t.response), safety_label=t.safety_label)
          for d, j, t, context in _turns(dialogues) if t.response and t.response.strip()]
