"""The hand-written sample shipped with the package."""

import collections
import os

import pytest

from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.data.labels import CASUAL, NEEDS_INTERVENTION, SAFETY_LABELS
from prosocial_jax.data.prosocial_dialog import CORPUS
from tasks.prosocial_dialog import canary_examples

_LEVELS = (CASUAL,) + SAFETY_LABELS[1:4]  # by the number of "needs caution" votes


@pytest.mark.parametrize("split,min_dialogues", [("train", 35), ("validation", 10)])
def test_sample_split(split, min_dialogues):
  dialogues = CORPUS.load_split(split, sample_data_root())
  assert len(dialogues) >= min_dialogues
  assert all(2 <= len(d.turns) <= 5 for d in dialogues)
  turns = [t for d in dialogues for t in d.turns]
  assert set(collections.Counter(t.safety_label for t in turns)) == set(SAFETY_LABELS)
  for d in dialogues:
    assert [t.episode_done for t in d.turns] == [False] * (len(d.turns) - 1) + [True]
  for t in turns:
    assert t.response and len(t.safety_annotations) == 3 and len(t.safety_annotation_reasons) == 3
    votes = t.safety_annotations
    expected = NEEDS_INTERVENTION if "needs intervention" in votes else _LEVELS[votes.count("needs caution")]
    assert t.safety_label == expected
    if t.safety_label != CASUAL:
      assert t.rots
  examples = canary_examples(dialogues)
  assert all(e["target"] == CASUAL for e in examples if e["safety_label"] == CASUAL)


def test_sample_is_small():
  folder = os.path.join(sample_data_root(), "prosocial_dialog")
  assert sorted(os.listdir(folder)) == ["train.json", "valid.json"]
  assert sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) < 100_000
