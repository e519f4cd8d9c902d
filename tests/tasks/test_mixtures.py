"""The paper's mixtures: rates defined once, and sampled at those rates (10k examples, ±2 points)."""

import collections

import pytest
import seqio

import tasks
from tasks import mixtures

PAPER = {
    "canary_mixture": {"prosocial_dialog_canary": 4, "daily_dialog_canary": 1,
                       "empathetic_dialogues_canary": 1, "blended_skill_talk_canary": 1},
    "prost_mixture": {"prosocial_dialog_prost_rot_response": 9, "daily_dialog_prost": 3,
                      "topical_chat_prost": 3, "persona_chat_prost": 3, "wizard_of_wikipedia_prost": 3,
                      "empathetic_dialogues_prost": 3, "blended_skill_talk_prost": 1},
    "prost_response_mixture": {"prosocial_dialog_prost_response": 9, "daily_dialog_prost": 3,
                               "topical_chat_prost": 3, "persona_chat_prost": 3,
                               "wizard_of_wikipedia_prost": 3, "empathetic_dialogues_prost": 3,
                               "blended_skill_talk_prost": 1},
}


def test_registered_rates_are_the_papers():
  assert mixtures.MIXTURES == PAPER
  for name, rates in PAPER.items():
    mixture = seqio.get_mixture_or_task(name)
    assert {t.name: mixture.get_rate(t) for t in mixture.tasks} == rates


@pytest.fixture
def byte_vocabulary():
  # Sampling does not depend on the vocabulary; bytes tokenize ~10x faster than BPE.
  tasks.set_vocabulary("byte")
  yield
  tasks.set_vocabulary(None)


@pytest.mark.parametrize("name", ["canary_mixture", "prost_mixture"])
def test_empirical_rates(use_synthetic, byte_vocabulary, name):
  rates = PAPER[name]
  owner = {}
  for task_name in rates:  # which task each input comes from
    task = seqio.get_mixture_or_task(task_name)
    for example in task.source.examples("train"):
      assert owner.setdefault(example["context"], task_name) == task_name, "ambiguous input"
  dataset = seqio.get_mixture_or_task(name).get_dataset(
      None, split="train", shuffle=True, seed=3, num_epochs=None, copy_pretokenized=True)
  n = 10_000
  inputs = dataset.take(n).map(lambda ex: ex["inputs_pretokenized"]).batch(1000)
  counts = collections.Counter(owner[s.decode()] for batch in inputs.as_numpy_iterator() for s in batch)
  assert sum(counts.values()) == n
  total = sum(rates.values())
  for task_name, rate in rates.items():
    assert abs(counts[task_name] / n - rate / total) < 0.02, (task_name, counts[task_name] / n, rate / total)
