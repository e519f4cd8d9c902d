"""`python -m prosocial_jax.eval` end to end: a tiny T5 trained a few steps on the shipped
sample, evaluated through the command line as a user would; bad input exits 2 with a
message, never a traceback.

The run's own final evaluation (the trainer calls the same `evaluation.run.evaluate`)
is the reference: the command line, on the same mesh (this test process's 8 CPU
devices, inherited through XLA_FLAGS), must report the same numbers.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tasks
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.models import t5_1_1_config
from prosocial_jax.training.optimizers import adam
from prosocial_jax.training.trainer import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
TASK = "prosocial_dialog_canary"
VALIDATION_EXAMPLES = 30  # canary examples of the sample's 12 validation dialogues


def run_eval(*args):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  env.pop("PROSOCIAL_JAX_TRACEBACK", None)
  return subprocess.run([sys.executable, "-m", "prosocial_jax.eval", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(MODEL_DIR with checkpoints at steps 2 and 4, the trainer's final evaluation)."""
  model_dir = tmp_path_factory.mktemp("eval") / "run"
  config = t5_1_1_config("tiny", vocab_size=1024, emb_dim=32, num_heads=2, head_dim=16,
                         mlp_dim=64)
  try:
    result = train(model_dir=str(model_dir), mixture_or_task_name=TASK,
                   task_feature_lengths={"inputs": 64, "targets": 16}, batch_size=8,
                   train_steps=4, model_config=config, optimizer=adam(learning_rate=3e-3),
                   data_root=sample_data_root(), log_every=2, checkpoint_every=2)
  finally:
    tasks.set_data_root(None)
  return model_dir, result.eval_metrics[TASK]


@pytest.mark.slow
def test_the_command_line_reports_the_papers_metrics(trained):
  model_dir, at_end_of_training = trained
  # The trainer's final evaluation already has the paper's metrics.
  assert {"safety_accuracy", "safety3_macro_f1", "rot_bleu4", "rot_f1",
          "perplexity"} <= set(at_end_of_training)

  result = run_eval(f"--model_dir={model_dir}", "--data_root=sample")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  path = model_dir / "eval" / f"{TASK}-validation-step4.json"
  assert f"Evaluated step 4 of {model_dir} on {TASK}/validation (30 examples): {path}" in (
      result.stdout)
  assert f"predict {TASK}: 4/4 batches, 30 examples" in result.stdout  # progress
  assert "examples/s" in result.stdout

  record = json.loads(path.read_text())
  assert (record["step"], record["split"], record["mixture_or_task_name"]) == (
      4, "validation", TASK)
  assert record["task_feature_lengths"] == {"inputs": 64, "targets": 16}  # the run's
  assert record["batch_size"] == 8 and record["num_examples"] == VALIDATION_EXAMPLES
  values = record["metrics"][TASK]
  assert {"safety_accuracy", "safety3_accuracy", "safety3_macro_f1", "rot_bleu4", "rot_f1",
          "rot_examples", "perplexity", "nll_per_token"} == set(values)
  for name, value in values.items():  # the same code, parameters and mesh as the trainer's
    assert value == pytest.approx(at_end_of_training[name], rel=1e-5), name
  assert 1.0 < values["perplexity"] < 1024 and 0 < values["rot_examples"] < 30

  confusion = record["confusion_matrix"][TASK]
  matrix = np.array(confusion["matrix"])
  assert confusion["labels"][-1] == "no_label" and matrix.shape == (6, 6)
  assert matrix.sum() == VALIDATION_EXAMPLES
  assert 100 * np.trace(matrix[:5, :5]) / matrix.sum() == pytest.approx(values["safety_accuracy"])
  assert "tok:13a" in record["settings"]["bleu4"]

  assert list((model_dir / "eval").glob("events.out.tfevents.*"))  # TensorBoard
  predictions = (model_dir / "eval" / "validation" / f"{TASK}-000004.jsonl").read_text()
  assert len(predictions.splitlines()) == VALIDATION_EXAMPLES

  report = model_dir / "report" / "index.html"  # the report, named in the final line
  assert f"; report: {report}" in result.stdout
  page = report.read_text()
  assert f"{values['safety_accuracy']:.2f}" in page and "paper: Canary (Delphi)" in page
  assert (model_dir / "report" / "report.md").exists()
  stem = f"{TASK}-validation-step4"
  for png in (f"{stem}-{TASK}-confusion.png", f"{stem}-{TASK}-per-label.png",
              f"{stem}-curves.png"):
    assert f'src="{png}"' in page and (model_dir / "report" / png).stat().st_size > 1000


@pytest.mark.slow
def test_another_task_step_and_subset(trained):
  model_dir, _ = trained
  result = run_eval(f"--model_dir={model_dir}", "--data_root=sample", "--step=2",
                    "--task=prosocial_dialog_rot", "--max_examples=10", "--batch_size=4",
                    "--gin.MeshShape.fsdp=2", "--gin.MeshShape.model=2")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  # A subset is a record of its own: it never replaces the whole split's.
  record = json.loads((model_dir / "eval" / "prosocial_dialog_rot-validation-step2-first10.json")
                      .read_text())
  assert not (model_dir / "eval" / "prosocial_dialog_rot-validation-step2.json").exists()
  assert record["predictions"] == str(model_dir / "eval" / "validation-first10")
  assert len((model_dir / "eval" / "validation-first10" /
              "prosocial_dialog_rot-000002.jsonl").read_text().splitlines()) == 10
  assert (record["step"], record["num_examples"], record["batch_size"]) == (2, 10, 4)
  assert "{'data': 2, 'fsdp': 2, 'model': 2} mesh" in result.stdout  # gin reached the mesh
  assert {"rot_bleu4", "rot_f1", "rot_examples", "perplexity", "nll_per_token"} == set(
      record["metrics"]["prosocial_dialog_rot"])
  assert record["metrics"]["prosocial_dialog_rot"]["rot_examples"] == 10
  assert record["confusion_matrix"] == {}


@pytest.mark.parametrize("args, message", [
    (["--model_dir={missing}"], "MODEL_DIR {missing} does not exist."),
    (["--model_dir={run}", "--task=prosocial_dialog_canry"],
     "unknown task or mixture 'prosocial_dialog_canry'. Nearest: prosocial_dialog_canary"),
    (["--model_dir={run}", "--data_root=sample", "--split=test"], "No 'test' split file in"),
    (["--model_dir={run}", "--step=3"],
     "{run} has no complete checkpoint at step 3; it has steps 2, 4."),
    (["--model_dir={run}", "--batch_size=3"], "batch size 3 does not split over the mesh's 8"),
    (["--model_dir={run}", "--gin.MeshShape.model=3"], "8 devices cannot be split into a mesh"),
])
def test_bad_input_exits_2_with_a_message(trained, tmp_path, args, message):
  model_dir, _ = trained
  fill = {"missing": tmp_path / "nothing", "run": model_dir}
  result = run_eval(*(a.format(**fill) for a in args))
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert f"error: {message.format(**fill)}" in result.stderr
