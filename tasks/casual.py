"""SeqIO tasks on the casual corpora, in both roles.

For each casual corpus <corpus> (prosocial_jax.data.corpora_of("casual"): daily_dialog,
empathetic_dialogues, blended_skill_talk, topical_chat, persona_chat,
wizard_of_wikipedia):

  <corpus>_canary  every utterance, with the history before it → `__casual__`
  <corpus>_prost   the history → the next utterance, for the utterances ParlAI's
                   default teacher answers with (Conversation.responses)

Inputs are formatted and cut as for ProsocialDialog. Each corpus is read in its
original release format (prosocial_jax/data/<corpus>.py).
"""

from __future__ import annotations

from typing import Any, Iterable

from prosocial_jax.data import CORPORA, corpora_of, formatting
from prosocial_jax.data.labels import CASUAL
from prosocial_jax.data.reading import Conversation
from prosocial_jax.evaluation import metrics
from tasks import preprocessors
from tasks.registration import register_task

CASUAL_CORPORA = corpora_of("casual")


def canary_task(corpus: str) -> str:
  return f"{corpus}_canary"


def prost_task(corpus: str) -> str:
  return f"{corpus}_prost"


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


for _corpus in CASUAL_CORPORA:
  register_task(canary_task(_corpus), CORPORA[_corpus], canary_examples,
                postprocess_fn=preprocessors.canary_postprocessor,
                metric_fns=[*metrics.SAFETY_METRICS, metrics.perplexity],
                extra_features=("safety_label",))
  register_task(prost_task(_corpus), CORPORA[_corpus], prost_examples,
                postprocess_fn=preprocessors.prost_postprocessor,
                metric_fns=[metrics.response_generation, metrics.perplexity])
