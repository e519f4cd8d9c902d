"""The README's quickstart, run as a user would (a subprocess), shortened to a few steps."""

import glob
import json
import os
import pathlib
import subprocess
import sys

import pytest
import sentencepiece

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train(model_dir, *bindings, check=True, gin_file="gin/quickstart.gin"):
  command = [sys.executable, "-m", "prosocial_jax.train", f"--gin_file={gin_file}",
             f"--gin.MODEL_DIR='{model_dir}'", *bindings]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  env.pop("XLA_FLAGS", None)  # one CPU device, as on a user's laptop
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
  if check and result.returncode != 0:
    pytest.fail(f"quickstart failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}")
  return result


@pytest.mark.slow
def test_quickstart_trains_evaluates_checkpoints_and_resumes(tmp_path):
  model_dir = tmp_path / "quickstart"
  first = _train(model_dir, "--gin.TRAIN_STEPS=4", "--gin.train.log_every=2",
                 "--gin.train.checkpoint_every=2")
  out = first.stdout
  assert "Initialised a new model" in out
  assert "prosocial_jax 0.1.0 (git " in out  # which code: the version and, in a clone, the commit
  assert "step 4/4 | loss" in out and "steps/s" in out and "tokens/s" in out and "ETA" in out
  assert "eval prosocial_dialog_canary/validation:" in out
  assert "safety_accuracy" in out and "perplexity" in out
  assert sorted(p.name for p in model_dir.glob("checkpoint_*")) == ["checkpoint_2", "checkpoint_4"]
  assert (model_dir / "checkpoint_4" / "input").is_dir()  # the input pipeline's position
  meta = json.loads((model_dir / "checkpoint_4" / "meta" / "metadata").read_text())
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                        text=True).stdout.strip()
  assert meta["code"]["version"] == "0.1.0" and meta["code"]["git_commit"] == head
  config = (model_dir / "config.gin").read_text()
  assert "train.train_steps = 4" in config or "TRAIN_STEPS = 4" in config
  assert (model_dir / "vocabulary" / "prosocial_sample.model").exists()
  assert glob.glob(str(model_dir / "train" / "events.out.tfevents.*"))
  assert (model_dir / "inference_eval" / "prosocial_dialog_canary-metrics.jsonl").exists()
  # The evaluation's record and report, as `python -m prosocial_jax.eval` writes them.
  record = json.loads((model_dir / "eval" /
                       "prosocial_dialog_canary-validation-step4.json").read_text())
  assert record["step"] == 4 and record["num_examples"] > 0
  assert record["metrics"]["prosocial_dialog_canary"]["safety_accuracy"] is not None
  assert "Evaluation of step 4" in (model_dir / "report" / "index.html").read_text()

  # Resumes, then evaluates with int8-packed decoder-step weights.
  second = _train(model_dir, "--gin.TRAIN_STEPS=6", "--gin.train.log_every=2",
                  "--gin.train.checkpoint_every=2", "--gin.train.eval_decode_weights='int8'")
  assert f"Resumed from {model_dir} at step 4." in second.stdout
  assert "replaying" not in second.stdout  # restored the iterator instead
  assert "step 6/6" in second.stdout and "step 2/6" not in second.stdout
  assert (model_dir / "checkpoint_6").exists()
  assert "(decoder steps with int8 weights)" in second.stdout
  step6 = json.loads((model_dir / "eval" /
                      "prosocial_dialog_canary-validation-step6-int8.json").read_text())
  assert step6["decode_weights"] == "int8"
  assert "eval prosocial_dialog_canary/validation:" in second.stdout

  other_shape = _train(model_dir, "--gin.TRAIN_STEPS=8", "--gin.t5_1_1_config.emb_dim=64",
                       check=False)
  assert other_shape.returncode != 0
  assert "holds a checkpoint (step 6) of another model" in other_shape.stdout + other_shape.stderr
  assert "model_config.emb_dim: checkpoint has 128, this run has 64" in (
      other_shape.stdout + other_shape.stderr)

  typo = _train(model_dir, "--gin.t5_1_1_config.vocab_siz=100", check=False)
  assert typo.returncode == 2 and "Traceback" not in typo.stderr
  assert "error: Unknown T5Config field 'vocab_siz' (did you mean 'vocab_size'?)" in typo.stderr

  _exported_model_predicts_as_our_evaluation(model_dir, tmp_path / "hf")


def _exported_model_predicts_as_our_evaluation(model_dir, out):
  """The README's export, then transformers on it: the exported tokenizer gives the SeqIO
  task's ids for the validation contexts, and greedy generation gives the predictions our
  step-4 evaluation wrote (float32 weights; step 6 decoded with int8 ones)."""
  transformers = pytest.importorskip("transformers")
  env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = subprocess.run([sys.executable, "-m", "prosocial_jax.export",
                           f"--model_dir={model_dir}", f"--output_dir={out}", "--step=4"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Exported step 4 to {out}" in result.stdout
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  spm = sentencepiece.SentencePieceProcessor(model_file=str(out / "spiece.model"))
  model = transformers.AutoModelForSeq2SeqLM.from_pretrained(out)
  rows = [json.loads(line) for line in
          (model_dir / "inference_eval" / "prosocial_dialog_canary-000004.jsonl").open()]
  compared_ids = 0
  assert tokenizer.model_max_length == 192  # the run's inputs length: what truncation cuts to
  for row in rows:
    encoded = tokenizer([row["input"]["inputs_pretokenized"]], return_tensors="pt",
                        truncation=True)
    if isinstance(row["input"]["inputs"], list):  # long ones are logged as a summary
      assert encoded["input_ids"][0].tolist() == row["input"]["inputs"]
      compared_ids += 1
    tokens = model.generate(**encoded, do_sample=False, max_new_tokens=48)[0].tolist()
    # Decoded by SentencePiece as SeqIO does: after 4 steps the model emits stray
    # byte-fallback pieces, whose invalid UTF-8 the two decoders spell differently, and
    # control bytes the task's postprocessor trims as whitespace (Python's str.strip).
    ids = [t for t in tokens[1:] if t not in (0, 1)]  # decoder start, EOS and padding
    assert spm.decode(ids).split() == row["prediction"].split()
  assert len(rows) == 30 and compared_ids >= 5


def test_the_prost_quickstart_gives_a_prost_that_responds(tmp_path):
  """README, "Canary and Prost from Python and the shell": the tiny Prost to try them on."""
  model_dir = tmp_path / "prost"
  out = _train(model_dir, "--gin.TRAIN_STEPS=3", "--gin.train.log_every=3",
               "--gin.train.eval_at_end=False", gin_file="gin/prost_quickstart.gin").stdout
  assert "Training prosocial_dialog_prost_rot_response from step 0 to 3" in out
  from prosocial_jax.inference import Prost
  reply = Prost.from_pretrained(str(model_dir)).generate(["I skipped my friend's party."])[0]
  assert isinstance(reply.response, str) and reply.inputs == "User: I skipped my friend's party."
