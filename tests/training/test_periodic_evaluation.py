"""The periodic evaluation's two halves, teacher-forced perplexity and the SeqIO decode
metrics (`eval_decode`), read the same examples: `eval_max_examples` limits both."""

import json

import pytest

import tasks

from .conftest import train_on_sample


def test_eval_max_examples_limits_the_decode_metrics_too(tmp_path, caplog):
  caplog.set_level("INFO", logger="prosocial_jax")
  try:
    train_on_sample(tmp_path, train_steps=4, eval_every=4, eval_decode=True, eval_max_examples=8,
                    checkpoint_every=1000)
  finally:
    tasks.set_data_root(None)
  assert "Evaluating prosocial_dialog_canary on 8 validation examples" in caplog.text
  record = tmp_path / "eval" / "prosocial_dialog_canary-validation-step4-first8.json"
  assert json.loads(record.read_text())["max_examples"] == 8  # a subset, named as one
  (logged,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
               if "eval/perplexity" in line]
  # Both perplexities over the same 8 examples' target tokens.
  assert logged["eval/prosocial_dialog_canary/perplexity"] == pytest.approx(
      logged["eval/perplexity"], rel=1e-4)


def test_the_final_evaluation_is_not_a_repeat_of_the_periodic_one_at_the_last_step(tmp_path,
                                                                                    caplog):
  caplog.set_level("INFO", logger="prosocial_jax")
  try:
    result = train_on_sample(tmp_path, train_steps=4, eval_every=4, eval_decode=True,
                             eval_at_end=True, checkpoint_every=1000)
  finally:
    tasks.set_data_root(None)
  assert caplog.text.count("Evaluating prosocial_dialog_canary on 30 validation examples") == 1
  assert caplog.text.count("Evaluation of step 4 recorded") == 1
  assert ("Step 4 was evaluated by the periodic evaluation just before: its results stand as "
          "the final evaluation.") in caplog.text
  record = json.loads((tmp_path / "eval" / "prosocial_dialog_canary-validation-step4.json")
                      .read_text())
  returned = {k: v for k, v in result.eval_metrics["prosocial_dialog_canary"].items()
              if not k.startswith("safety_confusion/")}  # the record keeps those as a matrix
  assert returned == pytest.approx(record["metrics"]["prosocial_dialog_canary"])
