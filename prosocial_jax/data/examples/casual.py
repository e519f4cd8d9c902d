"""Casual conversations → the examples of the `<corpus>_canary` and `<corpus>_prost` tasks."""

from __future__ import annotations

from typing import Any, Iterable

from prosocial_jax.data import formatting
from prosocial_jax.data.labels import CASUAL
from prosocial_jax.data.records import Conversation


def canary_examples(conversations: Iterable[Conversation]) -> list[dict[str, Any]]:
  """Every utterance, as the last of its context → `__casual__` (the token alone)."""
  return [dict(context=formatting.format_history(c.utterances[:k + 1]), target=CASUAL,
               safety_label=CASUAL, dialogue_index=c.index, turn_index=k)
          for c in conversations for k in range(len(c.utterances))]


def prost_examples(conversations: Iterable[Conversation]) -> list[dict[str, Any]]:
  """Every response (Conversation.responses): the utterances before it → the response."""
  return [dict(context=formatting.format_history(c.utterances[:k]),
               target=formatting.normalize_text(c.utterances[k]),
               dialogue_index=c.index, turn_index=k)
          for c in conversations for k in c.responses if k > 0]
