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

Each example also has the string feature `safety_label`, and `dialogue_index` /
`turn_index` to trace it back to the file. Splits: train, validation, test (a
missing split file is reported when that split is built).
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Iterator

from prosocial_jax.data import formatting
from prosocial_jax.data.prosocial_dialog import CORPUS, Dialogue, Turn
from prosocial_jax.evaluation import metrics
from tasks import preprocessors
from tasks.registration import register_task

CANARY_TASK = "prosocial_dialog_canary"
SAFETY_TASK = "prosocial_dialog_safety"
ROT_TASK = "prosocial_dialog_rot"
PROST_ROT_RESPONSE_TASK = "prosocial_dialog_prost_rot_response"
PROST_RESPONSE_TASK = "prosocial_dialog_prost_response"
PROST_GOLD_ROT_TASK = "prosocial_dialog_prost_gold_rot"


def _turns(dialogues: Iterable[Dialogue]) -> Iterator[tuple[Dialogue, int, Turn, str]]:
  """(dialogue, turn index, turn, context) for every turn; the context is the dialogue so
  far: earlier turns' utterances and their responses, then this turn's utterance."""
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


# task -> (examples, postprocessor, metrics). Prost's three evaluations (the paper's
# Table 3) are the response metrics of the response-only, RoT & response and gold-RoT tasks.
TASKS = {
    CANARY_TASK: (canary_examples, preprocessors.canary_postprocessor,
                  [*metrics.SAFETY_METRICS, metrics.rot_generation, metrics.perplexity]),
    SAFETY_TASK: (safety_examples, preprocessors.canary_postprocessor,
                  [*metrics.SAFETY_METRICS, metrics.perplexity]),
    ROT_TASK: (rot_examples, preprocessors.rots_postprocessor,
               [metrics.rot_generation, metrics.perplexity]),
    PROST_ROT_RESPONSE_TASK: (functools.partial(prost_examples, with_rots=True),
                              preprocessors.prost_postprocessor,
                              [metrics.response_generation, metrics.prost_rot_generation,
                               metrics.perplexity]),
    PROST_RESPONSE_TASK: (functools.partial(prost_examples, with_rots=False),
                          preprocessors.text_postprocessor,
                          [metrics.response_generation, metrics.perplexity]),
    PROST_GOLD_ROT_TASK: (gold_rot_examples, preprocessors.text_postprocessor,
                          [metrics.response_generation, metrics.perplexity]),
}

for _name, (_build, _postprocess, _metrics) in TASKS.items():
  register_task(_name, CORPUS, _build, postprocess_fn=_postprocess, metric_fns=_metrics,
                extra_features=("safety_label",))
