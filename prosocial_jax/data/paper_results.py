"""The paper's test-set results (Kim et al., EMNLP 2022, Tables 2 and 3) — defined once.

The exported model card (checkpoints/exporters/model_card.py) quotes them and the
evaluation report (evaluation/report.py) puts them beside a run's metrics; it lives
in `data` so that both layers may import it. Metric names are ours
(evaluation/metrics.py): percentages, except perplexity.

  RESULTS[role] = [(row of the paper's table, {metric: value})]

`role` is what a task or mixture trains or evaluates (`role_of_task`): canary,
safety, norms, prost_rot_response, prost_response, prost_gold_rot.
"""

from __future__ import annotations

import re
from typing import Optional

SPLIT = "test"

_CANARY = [
    ("T5", {"safety_accuracy": 73.4}),
    ("Canary (Social Chemistry)", {"safety_accuracy": 73.1}),
    ("Canary (MIC)", {"safety_accuracy": 74.0}),
    ("Canary (Delphi)", {"safety_accuracy": 77.1, "rot_bleu4": 16.5, "rot_f1": 43.3,
                         "perplexity": 5.3}),
]

RESULTS: dict[str, list[tuple[str, dict[str, float]]]] = {
    "canary": _CANARY,
    "safety": [(row, {"safety_accuracy": values["safety_accuracy"]}) for row, values in _CANARY],
    "prost_response": [("Prost (response only)", {
        "response_bleu4": 3.98, "response_f1": 30.30, "perplexity": 6.31})],
    "prost_rot_response": [("Prost (RoT & response)", {
        "response_bleu4": 4.13, "response_f1": 31.13, "perplexity": 6.22})],
    "prost_gold_rot": [("Prost (with gold RoT)", {
        "response_bleu4": 4.51, "response_f1": 32.78, "perplexity": 6.16})],
}

_NAMES = {"safety_accuracy": "safety accuracy", "rot_bleu4": "RoT BLEU-4", "rot_f1": "RoT F1",
          "response_bleu4": "response BLEU-4", "response_f1": "response F1",
          "perplexity": "PPL"}


def role_of_task(name: str) -> Optional[str]:
  """What task or mixture `name` trains or evaluates, from its name; None if unknown."""
  for pattern, role in (("prost_gold_rot", "prost_gold_rot"), ("prost_response", "prost_response"),
                        ("prost", "prost_rot_response"), ("canary", "canary"),
                        ("safety", "safety"), (r"_rot$|judgment", "norms")):
    if re.search(pattern, name):
      return role
  return None


def summary(role: str) -> Optional[str]:
  """One line for prose (the model card), e.g. "Canary (Delphi): safety accuracy 77.1, ..."."""
  rows = RESULTS.get(role)
  if not rows:
    return None
  return "; ".join(f"{row}: " + ", ".join(f"{_NAMES.get(k, k)} {v:g}" for k, v in values.items())
                   for row, values in rows)
