"""The paper's mixtures. Their rates are defined here and nowhere else.

Rates are relative weights: SeqIO samples the next example from a task with
probability rate / sum(rates), independently of the tasks' sizes (each task
repeats as needed).

  canary_mixture          ProsocialDialog : DailyDialog : EmpatheticDialogues : BlendedSkillTalk
                          = 4 : 1 : 1 : 1 (Canary targets; casual corpora → `__casual__`)
  prost_mixture           ProsocialDialog : DailyDialog : TopicalChat : PersonaChat :
                          Wizard of Wikipedia : EmpatheticDialogues : BlendedSkillTalk
                          = 9 : 3 : 3 : 3 : 3 : 3 : 1, Prost generating RoT then response
  prost_response_mixture  the same rates, Prost generating the response only

The casual corpora's Prost targets (bare utterances) fit both Prost variants: a
turn without RoTs is a bare response in the RoT-then-response format too.
"""

from __future__ import annotations

import seqio

from prosocial_jax.data import corpus
from tasks import casual
from tasks import prosocial_dialog as pd

# Corpus -> rate, per mixture: the paper's numbers, once.
CANARY_RATES = {
    "prosocial_dialog": 4,
    "daily_dialog": 1,
    "empathetic_dialogues": 1,
    "blended_skill_talk": 1,
}
PROST_RATES = {
    "prosocial_dialog": 9,
    "daily_dialog": 3,
    "topical_chat": 3,
    "persona_chat": 3,
    "wizard_of_wikipedia": 3,
    "empathetic_dialogues": 3,
    "blended_skill_talk": 1,
}


def _tasks(rates: dict[str, int], prosocial_task: str, casual_task) -> dict[str, int]:
  """Task -> rate: ProsocialDialog's task, and each casual corpus's (`corpus` rejects a
  name that is no corpus)."""
  return {(prosocial_task if corpus(name).role == "prosocial" else casual_task(name)): rate
          for name, rate in rates.items()}


MIXTURES: dict[str, dict[str, int]] = {
    "canary_mixture": _tasks(CANARY_RATES, pd.CANARY_TASK, casual.canary_task),
    "prost_mixture": _tasks(PROST_RATES, pd.PROST_ROT_RESPONSE_TASK, casual.prost_task),
    "prost_response_mixture": _tasks(PROST_RATES, pd.PROST_RESPONSE_TASK, casual.prost_task),
}

for _name, _rates in MIXTURES.items():
  if _name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(_name)
  seqio.MixtureRegistry.add(_name, list(_rates.items()))
