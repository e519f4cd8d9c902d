"""Stage-1 SeqIO tasks for the Canary variants: a situation → a rule-of-thumb or judgment.

One task per social-norm corpus (prosocial_jax.data.corpora_of("social_norms")):

  social_chem_101_rot              Social Chemistry 101: situation → RoT
  moral_integrity_corpus_rot       MIC: prompt + chatbot reply → RoT
  commonsense_norm_bank_judgment   Norm Bank-style: situation → judgment ("it's rude")

The situation is written as a one-utterance context (`User: <situation>`), and a
MIC prompt and reply as a two-utterance one (`Bot: <prompt> User: <reply>`: the
judged utterance is last, as in Canary's input), so stage 1 reads like stage 2.
"""

from __future__ import annotations

from typing import Any, Iterable

from prosocial_jax.data import CORPORA, corpora_of, formatting
from prosocial_jax.data.reading import NormExample
from prosocial_jax.evaluation import metrics
from tasks import preprocessors
from tasks.registration import register_task

# A task is named after what it writes: the Norm Bank's targets are judgments, the others' RoTs.
_TARGETS = {"commonsense_norm_bank": "judgment"}
# Task -> corpus.
TASKS = {f"{corpus}_{_TARGETS.get(corpus, 'rot')}": corpus for corpus in corpora_of("social_norms")}


def norm_examples(rows: Iterable[NormExample]) -> list[dict[str, Any]]:
  return [dict(context=formatting.format_history(row.utterances),
               target=formatting.normalize_text(row.target), id=row.id) for row in rows]


for _name, _corpus in TASKS.items():
  register_task(_name, CORPORA[_corpus], norm_examples,
                postprocess_fn=preprocessors.text_postprocessor, metric_fns=[metrics.perplexity])
