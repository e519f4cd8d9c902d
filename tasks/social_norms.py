"""Stage-1 SeqIO tasks for the Canary variants: a situation → a rule-of-thumb or judgment.

  social_chem_101_rot              Social Chemistry 101: situation → RoT
  moral_integrity_corpus_rot       MIC: prompt + chatbot reply → RoT
  commonsense_norm_bank_judgment   Norm Bank-style: situation → judgment ("it's rude")

Inputs are written as one- or two-utterance contexts (prosocial_jax/data/examples/
social_norms.py) so stage 1 reads like stage 2.
"""

from __future__ import annotations

from typing import Callable

from prosocial_jax.data.examples.social_norms import norm_examples
from prosocial_jax.data.readers import reader
from prosocial_jax.evaluation import metrics
from tasks import data_sources, preprocessors
from tasks.registration import register_task

TASKS = {
    "social_chem_101_rot": "social_chem_101",
    "moral_integrity_corpus_rot": "moral_integrity_corpus",
    "commonsense_norm_bank_judgment": "commonsense_norm_bank",
}


def _from_split(corpus: str) -> Callable[[str], list]:
  def examples_fn(split: str) -> list:
    rows = reader(corpus).load_split(split, data_sources.get_data_root(),
                                     skip_bad_records=data_sources.skip_bad_records())
    return norm_examples(rows)
  return examples_fn


for _name, _corpus in TASKS.items():
  register_task(_name, _from_split(_corpus), postprocess_fn=preprocessors.text_postprocessor,
                metric_fns=[metrics.perplexity])
