"""Every task reads its corpus from the data root and is wired to its postprocessor and
metric functions. The list of tasks comes from the registrations themselves
(tasks.registration.TASK_EXAMPLES); a few names typed out by hand check that list."""

import pytest
import seqio

from prosocial_jax.data import CORPORA
from prosocial_jax.evaluation import metrics
from tasks import casual, preprocessors, prosocial_dialog, social_norms, toxichat
from tasks.registration import TASK_EXAMPLES

# A spot check independent of the registrations:
# task -> (corpus, examples builder, predict metrics, postprocessor).
SAFETY = ["safety_accuracy", "safety_three_way", "safety_confusion"]
SPOT_CHECK = {
    "prosocial_dialog_canary": ("prosocial_dialog", prosocial_dialog.canary_examples,
                                [*SAFETY, "rot_generation"], preprocessors.canary_postprocessor),
    "prosocial_dialog_rot": ("prosocial_dialog", prosocial_dialog.rot_examples,
                             ["rot_generation"], preprocessors.rots_postprocessor),
    "prosocial_dialog_prost_rot_response": (
        "prosocial_dialog", prosocial_dialog.TASKS["prosocial_dialog_prost_rot_response"][0],
        ["response_generation", "prost_rot_generation"], preprocessors.prost_postprocessor),
    "prosocial_dialog_prost_gold_rot": ("prosocial_dialog", prosocial_dialog.gold_rot_examples,
                                        ["response_generation"],
                                        preprocessors.text_postprocessor),
    "daily_dialog_canary": ("daily_dialog", casual.canary_examples, SAFETY,
                            preprocessors.canary_postprocessor),
    "wizard_of_wikipedia_prost": ("wizard_of_wikipedia", casual.prost_examples,
                                  ["response_generation"], preprocessors.prost_postprocessor),
    "commonsense_norm_bank_judgment": ("commonsense_norm_bank", social_norms.norm_examples, [],
                                       preprocessors.text_postprocessor),
    "toxichat_safety": ("toxichat", toxichat.safety_examples, ["safety_accuracy"],
                        preprocessors.binary_safety_postprocessor),
}


def test_registered_tasks_spot_check():
  assert len(TASK_EXAMPLES) == 22  # 6 ProsocialDialog + 2 × 6 casual + 3 stage-1 + ToxiChat
  assert set(TASK_EXAMPLES) <= set(seqio.TaskRegistry.names())
  for name, (corpus, build, predict_metrics, postprocessor) in SPOT_CHECK.items():
    task = seqio.get_mixture_or_task(name)
    assert (TASK_EXAMPLES[name].corpus.name, TASK_EXAMPLES[name].build) == (corpus, build)
    assert [f.__name__ for f in task.predict_metric_fns] == predict_metrics
    assert task.postprocessor is postprocessor
  assert {"canary_mixture", "prost_mixture", "prost_response_mixture"} <= set(seqio.MixtureRegistry.names())


def test_every_corpus_has_a_task():
  assert {examples.corpus.name for examples in TASK_EXAMPLES.values()} == set(CORPORA)


@pytest.mark.parametrize("name", sorted(TASK_EXAMPLES))
def test_task_reads_its_corpus(use_synthetic, name):
  task = seqio.get_mixture_or_task(name)
  examples = TASK_EXAMPLES[name]
  expected = examples.build(examples.corpus.load_split("validation", use_synthetic))
  rows = list(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
  assert [(r["inputs_pretokenized"].decode(), r["targets_pretokenized"].decode()) for r in rows] == [
      (e["context"], e["target"]) for e in expected]
  assert len(rows) > 0 and all(r["inputs"][-1] == 1 and r["targets"][-1] == 1 for r in rows)
  perplexity = [] if name == "toxichat_safety" else ["perplexity"]
  assert [f.__name__ for f in task.score_metric_fns] == perplexity
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


# What docs/data.md's task table writes for each metric function.
_DOC_WORDS = {"safety_accuracy": "safety_accuracy", "safety_three_way": "safety3_accuracy",
              "safety_confusion": "confusion matrix", "rot_generation": "rot_bleu4",
              "prost_rot_generation": "rot_bleu4", "response_generation": "response_bleu4",
              "perplexity": "perplexity"}
_CASUAL = ("daily_dialog", "empathetic_dialogues", "blended_skill_talk", "topical_chat",
           "persona_chat", "wizard_of_wikipedia")


def test_the_data_guides_task_table_names_each_tasks_metrics():
  import pathlib
  import re
  guide = pathlib.Path(__file__).resolve().parents[2] / "docs" / "data.md"
  rows = {}
  for line in guide.read_text().splitlines():
    match = re.match(r"\| `([^`]+)`(.*)\|([^|]*)\|$", line)
    if match:
      name, metrics_text = match.group(1), match.group(3)
      names = [name.replace("<corpus>", c) for c in _CASUAL] if "<corpus>" in name else [name]
      rows.update({n: metrics_text for n in names})
  assert set(TASK_EXAMPLES) <= set(rows), set(TASK_EXAMPLES) - set(rows)
  for name in TASK_EXAMPLES:
    task = seqio.get_mixture_or_task(name)
    expected = {_DOC_WORDS[f.__name__] for f in task.metric_fns}
    written = {word for word in _DOC_WORDS.values() if word in rows[name]}
    assert written == expected, name
