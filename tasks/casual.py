"""SeqIO tasks on the casual corpora, in both roles.

For each corpus folder <corpus> (daily_dialog, empathetic_dialogues,
blended_skill_talk, topical_chat, persona_chat, wizard_of_wikipedia):

  <corpus>_canary  every utterance, with the history before it → `__casual__`
  <corpus>_prost   the history → the next utterance, for the utterances ParlAI's
                   default teacher answers with (prosocial_jax/data/records.py)

Inputs are formatted and cut as for ProsocialDialog. Each corpus is read in its
original release format (prosocial_jax/data/readers/<corpus>.py).
"""

from __future__ import annotations

from typing import Callable

from prosocial_jax.data.examples import casual as examples
from prosocial_jax.data.readers import reader
from prosocial_jax.evaluation import metrics
from tasks import data_sources, preprocessors
from tasks.registration import register_task

CORPORA = ("daily_dialog", "empathetic_dialogues", "blended_skill_talk", "topical_chat",
           "persona_chat", "wizard_of_wikipedia")


def canary_task(corpus: str) -> str:
  return f"{corpus}_canary"


def prost_task(corpus: str) -> str:
  return f"{corpus}_prost"


def _from_split(corpus: str, build: Callable) -> Callable[[str], list]:
  def examples_fn(split: str) -> list:
    conversations = reader(corpus).load_split(split, data_sources.get_data_root(),
                                              skip_bad_records=data_sources.skip_bad_records())
    return build(conversations)
  return examples_fn


for _corpus in CORPORA:
  register_task(canary_task(_corpus), _from_split(_corpus, examples.canary_examples),
                postprocess_fn=preprocessors.canary_postprocessor,
                metric_fns=[metrics.safety_accuracy, metrics.perplexity],
                extra_features=("safety_label",))
  register_task(prost_task(_corpus), _from_split(_corpus, examples.prost_examples),
                postprocess_fn=preprocessors.prost_postprocessor,
                metric_fns=[metrics.perplexity])
