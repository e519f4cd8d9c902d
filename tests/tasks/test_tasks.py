"""Every task of the paper is registered, reads its corpus from the data root, and is wired
to its postprocessor and metric functions."""

import pytest
import seqio

from prosocial_jax.data.examples import casual, prosocial_dialog, social_norms, toxichat
from prosocial_jax.data.readers import reader
from prosocial_jax.evaluation import metrics
from tasks import preprocessors

CASUAL = ("daily_dialog", "empathetic_dialogues", "blended_skill_talk", "topical_chat",
          "persona_chat", "wizard_of_wikipedia")
# task -> (corpus, examples builder, predict metrics, postprocessor)
TASKS = {
    "prosocial_dialog_canary": ("prosocial_dialog", prosocial_dialog.canary_examples,
                                ["safety_accuracy"], preprocessors.canary_postprocessor),
    "prosocial_dialog_safety": ("prosocial_dialog", prosocial_dialog.safety_examples,
                                ["safety_accuracy"], preprocessors.canary_postprocessor),
    "prosocial_dialog_rot": ("prosocial_dialog", prosocial_dialog.rot_examples, [],
                             preprocessors.rots_postprocessor),
    "prosocial_dialog_prost_rot_response": (
        "prosocial_dialog", lambda d: prosocial_dialog.prost_examples(d, with_rots=True), [],
        preprocessors.prost_postprocessor),
    "prosocial_dialog_prost_response": (
        "prosocial_dialog", lambda d: prosocial_dialog.prost_examples(d, with_rots=False), [],
        preprocessors.text_postprocessor),
    "prosocial_dialog_prost_gold_rot": ("prosocial_dialog", prosocial_dialog.gold_rot_examples, [],
                                        preprocessors.text_postprocessor),
    **{f"{c}_canary": (c, casual.canary_examples, ["safety_accuracy"],
                       preprocessors.canary_postprocessor) for c in CASUAL},
    **{f"{c}_prost": (c, casual.prost_examples, [], preprocessors.prost_postprocessor) for c in CASUAL},
    "social_chem_101_rot": ("social_chem_101", social_norms.norm_examples, [],
                            preprocessors.text_postprocessor),
    "moral_integrity_corpus_rot": ("moral_integrity_corpus", social_norms.norm_examples, [],
                                   preprocessors.text_postprocessor),
    "commonsense_norm_bank_judgment": ("commonsense_norm_bank", social_norms.norm_examples, [],
                                       preprocessors.text_postprocessor),
    "toxichat_safety": ("toxichat", toxichat.safety_examples, ["safety_accuracy"],
                        preprocessors.binary_safety_postprocessor),
}


def test_every_task_is_registered():
  names = set(seqio.TaskRegistry.names())
  assert set(TASKS) <= names
  assert {"canary_mixture", "prost_mixture", "prost_response_mixture"} <= set(seqio.MixtureRegistry.names())


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_reads_its_corpus(use_synthetic, name):
  corpus, build, predict_metrics, postprocessor = TASKS[name]
  task = seqio.get_mixture_or_task(name)
  expected = build(reader(corpus).load_split("validation", use_synthetic))
  rows = list(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
  assert [(r["inputs_pretokenized"].decode(), r["targets_pretokenized"].decode()) for r in rows] == [
      (e["context"], e["target"]) for e in expected]
  assert len(rows) > 0 and all(r["inputs"][-1] == 1 and r["targets"][-1] == 1 for r in rows)
  assert [f.__name__ for f in task.predict_metric_fns] == predict_metrics
  perplexity = [] if name == "toxichat_safety" else ["perplexity"]
  assert [f.__name__ for f in task.score_metric_fns] == perplexity
  assert task.postprocessor is postprocessor
  assert task.source.splits == ("train", "validation", "test")


def test_postprocessors_parse_outputs():
  out = preprocessors.canary_postprocessor(b" __needs_caution__ It's rude., You should stop. ")
  assert out == "__needs_caution__ It's rude., You should stop."
  assert (out.label, out.rots) == ("__needs_caution__", ["It's rude.", "You should stop."])
  prost = preprocessors.prost_postprocessor("RoT: It's rude. Response: Please stop.")
  assert (prost.rots, prost.response) == (["It's rude."], "Please stop.")
  plain = preprocessors.prost_postprocessor("Sounds fun! ")
  assert (plain, plain.rots, plain.response) == ("Sounds fun!", [], "Sounds fun!")
  assert preprocessors.rots_postprocessor("A., B.").rots == ["A.", "B."]
  assert preprocessors.text_postprocessor(b" hi\n") == "hi"


def test_binary_safety_postprocessor_and_accuracy():
  post = preprocessors.binary_safety_postprocessor
  targets = [post("__casual__"), post("__needs_caution__"), post("__needs_caution__"), post("__casual__")]
  predictions = [post("__casual__"), post("__needs_intervention__ It's wrong."),
                 post("__possibly_needs_caution__"), post("no label at all")]
  assert [str(p) for p in predictions] == ["__casual__", "__needs_caution__", "__needs_caution__",
                                           "no label at all"]
  assert metrics.safety_accuracy(targets, predictions)["safety_accuracy"] == 75.0
