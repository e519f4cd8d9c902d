"""SeqIO tasks on ProsocialDialog (either public format, read from the data root).

Every task's input is the dialogue history up to the turn being judged or
answered ("User: ... Bot: ... User: ...", prosocial_jax/data/formatting.py), cut
from the left to the feature length. Targets:

  prosocial_dialog_canary              "<safety label> <rot>, <rot>" (the label alone when casual)
  prosocial_dialog_safety              "<safety label>"
  prosocial_dialog_rot                 "<rot>, <rot>" (turns with RoTs only)
  prosocial_dialog_prost_rot_response  "RoT: <rot>, <rot> Response: <response>" (bare response without RoTs)
  prosocial_dialog_prost_response      "<response>"
  prosocial_dialog_prost_gold_rot      "<response>", the input ending " RoT: <gold rots>"

Each example also has the string feature `safety_label`. Splits: train,
validation, test (a missing split file is reported when that split is built).
"""

from __future__ import annotations

import functools
from typing import Callable

from prosocial_jax.data.examples import prosocial_dialog as examples
from prosocial_jax.data.readers import prosocial_dialog as reader
from prosocial_jax.evaluation import metrics
from tasks import data_sources, preprocessors
from tasks.registration import register_task

CANARY_TASK = "prosocial_dialog_canary"
SAFETY_TASK = "prosocial_dialog_safety"
ROT_TASK = "prosocial_dialog_rot"
PROST_ROT_RESPONSE_TASK = "prosocial_dialog_prost_rot_response"
PROST_RESPONSE_TASK = "prosocial_dialog_prost_response"
PROST_GOLD_ROT_TASK = "prosocial_dialog_prost_gold_rot"
SPLITS = ("train", "validation", "test")


def _from_split(build: Callable) -> Callable[[str], list]:
  def examples_fn(split: str) -> list:
    dialogues = reader.load_split(split, data_sources.get_data_root(),
                                  skip_bad_records=data_sources.skip_bad_records())
    return build(dialogues)
  return examples_fn


_TASKS = {
    CANARY_TASK: (examples.canary_examples, preprocessors.canary_postprocessor,
                  [metrics.safety_accuracy, metrics.perplexity]),
    SAFETY_TASK: (examples.safety_examples, preprocessors.canary_postprocessor,
                  [metrics.safety_accuracy, metrics.perplexity]),
    ROT_TASK: (examples.rot_examples, preprocessors.rots_postprocessor, [metrics.perplexity]),
    PROST_ROT_RESPONSE_TASK: (functools.partial(examples.prost_examples, with_rots=True),
                              preprocessors.prost_postprocessor, [metrics.perplexity]),
    PROST_RESPONSE_TASK: (functools.partial(examples.prost_examples, with_rots=False),
                          preprocessors.text_postprocessor, [metrics.perplexity]),
    PROST_GOLD_ROT_TASK: (examples.gold_rot_examples, preprocessors.text_postprocessor,
                          [metrics.perplexity]),
}

for _name, (_build, _postprocess, _metrics) in _TASKS.items():
  register_task(_name, _from_split(_build), postprocess_fn=_postprocess, metric_fns=_metrics,
                extra_features=("safety_label",), splits=SPLITS)
