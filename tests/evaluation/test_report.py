"""The evaluation report, from a fake MODEL_DIR holding what training and eval.py write."""

import json

import numpy as np
import pytest
from matplotlib import image as mpimg

from prosocial_jax.data import paper_results
from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.evaluation import report
from prosocial_jax.evaluation.metrics import CONFUSION_LABELS

TASK = "prosocial_dialog_canary"
STEM = f"{TASK}-test-step300"
SCRIPT = "<script>alert('x')</script>"
# rows gold, columns predicted: the five labels, then no_label
MATRIX = [[5, 1, 0, 0, 0, 0], [1, 2, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 3, 0, 0],
          [0, 0, 0, 1, 4, 1], [0, 0, 0, 0, 0, 0]]


@pytest.fixture
def model_dir(tmp_path):
  rows = [{"step": s, "loss": 5.0 / s, "accuracy": 0.1} for s in (25, 50, 75, 100)]
  rows[1]["eval/prosocial_dialog_canary/perplexity"] = 80.0
  rows[3]["eval/prosocial_dialog_canary/perplexity"] = 40.0
  rows.append({"step": 100, "eval/perplexity": 41.0})  # the overall number of a mixture
  (tmp_path / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
  (tmp_path / "eval" / "test").mkdir(parents=True)
  record = {"model_dir": str(tmp_path), "step": 300, "mixture_or_task_name": TASK,
            "split": "test", "num_examples": 21,
            "metrics": {TASK: {"safety_accuracy": 66.6667, "rot_bleu4": 5.529, "rot_f1": 21.239,
                               "perplexity": 84.668}},
            "confusion_matrix": {TASK: {"labels": list(CONFUSION_LABELS), "rows": "gold",
                                        "columns": "predicted", "matrix": MATRIX}}}
  (tmp_path / "eval" / f"{STEM}.json").write_text(json.dumps(record))
  predictions = []
  for i, label in enumerate(SAFETY_LABELS * 5):
    prediction = f"{label} It's wrong #{i}." + (f" {SCRIPT}" if i == 0 else "")
    predictions.append({"input": {"inputs_pretokenized": f"User: context {i} & more"},
                        "target": f"{label} gold RoT {i}", "prediction": prediction})
  (tmp_path / "eval" / "test" / f"{TASK}-000300.jsonl").write_text(
      "".join(json.dumps(p) + "\n" for p in predictions))
  return tmp_path


def test_curves_feed_the_plot_every_logged_point(model_dir):
  series = report.curves(report.read_jsonl(model_dir / "metrics.jsonl"))
  assert series["loss"] == ([25, 50, 75, 100], [0.2, 0.1, 5.0 / 75, 0.05])
  assert series[f"{TASK}/perplexity"] == ([50, 100], [80.0, 40.0])
  assert series["perplexity"] == ([100], [41.0])
  assert set(series) == {"loss", f"{TASK}/perplexity", "perplexity"}  # not accuracy


def test_per_label_accuracy():
  accuracy = report.per_label_accuracy({"labels": list(CONFUSION_LABELS), "matrix": MATRIX})
  assert list(accuracy) == list(SAFETY_LABELS)
  assert accuracy[SAFETY_LABELS[0]] == pytest.approx(100 * 5 / 6)
  assert accuracy[SAFETY_LABELS[2]] is None  # no gold example
  assert accuracy[SAFETY_LABELS[4]] == pytest.approx(100 * 4 / 6)


def test_examples_per_label_keeps_the_first_k_of_each_gold_label():
  rows = [{"target": f"{label} rot", "prediction": "p", "input": {"inputs_pretokenized": "c"}}
          for label in SAFETY_LABELS * 4] + [{"target": "a bare response", "prediction": "q"}]
  groups = report.examples_per_label(rows, k=2)
  assert list(groups) == list(SAFETY_LABELS) + [report.UNLABELLED]
  assert all(len(g) == 2 for label, g in groups.items() if label != report.UNLABELLED)
  assert groups[report.UNLABELLED] == [{"input": "", "gold": "a bare response",
                                        "prediction": "q"}]


def test_the_report(model_dir):
  index = report.write_report(str(model_dir), str(model_dir / "eval" / f"{STEM}.json"))
  folder = model_dir / "report"
  assert index == str(folder / "index.html")
  page, md = (folder / "index.html").read_text(), (folder / "report.md").read_text()
  assert (folder / f"{STEM}.html").exists() and (folder / f"{STEM}.md").exists()
  for text in (page, md):
    for ours in ("66.67", "5.53", "21.24", "84.67"):  # this evaluation's metrics
      assert ours in text
    for row, values in paper_results.RESULTS["canary"]:  # the paper's, same row
      assert row in text
      assert all(f"{v:g}" in text for v in values.values())
    assert SCRIPT not in text and "&lt;script&gt;" in text  # predictions escaped
    assert "User: context 0 &amp; more" in text
    assert "gold RoT 0" in text and "It&#x27;s wrong #1." in page
  # the first 3 predictions per gold label: 15 of the 25
  assert sum(f"gold RoT {i}<" in page for i in range(25)) == 15

  images = [f"{STEM}-{TASK}-confusion.png", f"{STEM}-{TASK}-per-label.png", f"{STEM}-curves.png"]
  for name in images:
    assert f'src="{name}"' in page and f"({name})" in md
    pixels = mpimg.imread(folder / name)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert np.var(pixels) > 0  # not blank
  assert f'<a href="{STEM}.html">' in page


def test_an_earlier_report_stays_linked_and_a_task_without_paper_numbers(model_dir):
  report.write_report(str(model_dir), str(model_dir / "eval" / f"{STEM}.json"))
  record = {"step": 2, "split": "validation", "mixture_or_task_name": "prosocial_dialog_rot",
            "metrics": {"prosocial_dialog_rot": {"rot_f1": 12.5}}, "confusion_matrix": {}}
  second = model_dir / "eval" / "prosocial_dialog_rot-validation-step2.json"
  second.write_text(json.dumps(record))
  page = pathlib_text(report.write_report(str(model_dir), str(second)))
  assert "12.50" in page and "The paper reports no numbers for this task." in page
  assert "reference, not a like-for-like comparison" in page  # validation vs the paper's test
  assert f'<a href="{STEM}.html">' in page
  assert '<a href="prosocial_dialog_rot-validation-step2.html">' in page
  assert "confusion" not in page


def pathlib_text(path):
  with open(path) as f:
    return f.read()
