"""toxichat_safety: zero-shot evaluation of Canary's safety label on ToxiChat.

Every turn of a thread, and each chatbot reply, is judged with the thread so far
as its context. ToxiChat's labels are binary; the targets use Canary's tokens:
Safe → `__casual__`, Offensive → `__needs_caution__`, and the task's
postprocessor maps every non-casual Canary label to `__needs_caution__`, so
`safety_accuracy` measures binary offensive-or-not accuracy. Extra features:
offense_label (Safe / Offensive) and speaker (reddit / dgpt / gpt3). Splits:
train, validation (dev.jsonl), test.
"""

from __future__ import annotations

from typing import Any, Iterable

from prosocial_jax.data import formatting
from prosocial_jax.data.labels import CASUAL, NEEDS_CAUTION
from prosocial_jax.data.toxichat import CORPUS, Thread
from prosocial_jax.evaluation import metrics
from tasks import preprocessors
from tasks.registration import register_task

TOXICHAT_TASK = "toxichat_safety"
BINARY_TARGETS = {"Safe": CASUAL, "Offensive": NEEDS_CAUTION}


def safety_examples(threads: Iterable[Thread]) -> list[dict[str, Any]]:
  examples = []
  for thread in threads:
    texts = [t.text for t in thread.turns]
    for k, turn in enumerate(thread.turns):
      examples.append(dict(context=formatting.format_history(texts[:k + 1]),
                           target=BINARY_TARGETS[turn.offense_label],
                           offense_label=turn.offense_label, speaker="reddit",
                           dialogue_index=thread.index, turn_index=k))
    for model, reply in sorted(thread.replies.items()):
      examples.append(dict(context=formatting.format_history(texts + [reply.text]),
                           target=BINARY_TARGETS[reply.offense_label],
                           offense_label=reply.offense_label, speaker=model,
                           dialogue_index=thread.index, turn_index=len(texts)))
  return examples


register_task(TOXICHAT_TASK, CORPUS, safety_examples,
              postprocess_fn=preprocessors.binary_safety_postprocessor,
              metric_fns=[metrics.safety_accuracy], extra_features=("offense_label", "speaker"))
