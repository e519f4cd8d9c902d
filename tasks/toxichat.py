"""toxichat_safety: zero-shot evaluation of Canary's safety label on ToxiChat.

Each Reddit turn and chatbot reply, with the thread so far as context → `__casual__`
(Safe) or `__needs_caution__` (Offensive). The postprocessor maps every
non-casual Canary label to `__needs_caution__`, so `safety_accuracy` is binary
offensive-or-not accuracy. Extra features: offense_label (Safe / Offensive) and
speaker (reddit / dgpt / gpt3). Splits: train, validation (dev.jsonl), test.
"""

from __future__ import annotations

from prosocial_jax.data.examples.toxichat import safety_examples
from prosocial_jax.data.readers import toxichat as reader
from prosocial_jax.evaluation import metrics
from tasks import data_sources, preprocessors
from tasks.registration import register_task

TOXICHAT_TASK = "toxichat_safety"


def _examples(split: str) -> list:
  threads = reader.load_split(split, data_sources.get_data_root(),
                              skip_bad_records=data_sources.skip_bad_records())
  return safety_examples(threads)


register_task(TOXICHAT_TASK, _examples, postprocess_fn=preprocessors.binary_safety_postprocessor,
              metric_fns=[metrics.safety_accuracy], extra_features=("offense_label", "speaker"))
