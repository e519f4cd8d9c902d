"""The whole Canary chain through the real entry point, with a tiny model on fixture data.

Stage 1 (gin/canary/stage1_social_chem.gin) keeps its best checkpoint by validation
perplexity; stage 2 (gin/canary/stage2.gin, canary_mixture) starts from that checkpoint
(INITIAL_CHECKPOINT_PATH = stage 1's MODEL_DIR), trains and evaluates. The recipes run as
written except for what a CPU test must shrink: the model (gin/models/t5_1_1/tiny.gin after
the recipe), lengths, batch, steps and evaluation interval; stage 1 starts at random and
both stages use the sample vocabulary, as no pretrained T5 is at hand.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from prosocial_jax.data import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Stage 1 evaluates at steps 10 and 20 and ends at 25 with a checkpoint that has no
# perplexity, so its best checkpoint is never its latest: stage 2 must pick the best.
STAGE1_STEPS, STAGE1_EVERY = 25, 10
STAGE2_STEPS, STAGE2_EVERY = 10, 5
_PERPLEXITY = re.compile(r"step (\d+): validation perplexity ([0-9.]+) \((\S+), validation split\)")


def _train(recipe, model_dir, data_root, cache_dir, *extra):
  command = [sys.executable, "-m", "prosocial_jax.train", f"--gin_file={recipe}",
             "--gin_file=gin/models/t5_1_1/tiny.gin", f"--gin.MODEL_DIR='{model_dir}'",
             f"--gin.DATA_ROOT='{data_root}'", "--gin.VOCABULARY=None",
             "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 24}", "--gin.BATCH_SIZE=8",
             *extra]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
  # One device, as a user's CPU run; the vocabulary and data only from the command line.
  for name in ("XLA_FLAGS", "PROSOCIAL_JAX_VOCAB", "PROSOCIAL_JAX_VOCAB_EXTRA_IDS",
               "PROSOCIAL_JAX_DATA"):
    env.pop(name, None)
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result.stdout


def _perplexities(log, task):
  """{step: validation perplexity} of the periodic evaluations in a run's log."""
  return {int(step): float(value) for step, value, name in _PERPLEXITY.findall(log)
          if name == task}


@pytest.mark.slow
def test_stage2_starts_from_the_best_checkpoint_of_stage1(tmp_path):
  data_root = synthetic.write_data_root(str(tmp_path / "data"), dialogues=12)
  stage1, stage2, cache = tmp_path / "stage1", tmp_path / "stage2", tmp_path / "jax_cache"

  log1 = _train("gin/canary/stage1_social_chem.gin", stage1, data_root, cache,
                "--gin.INITIAL_CHECKPOINT_PATH=None", f"--gin.TRAIN_STEPS={STAGE1_STEPS}",
                f"--gin.train.eval_every={STAGE1_EVERY}", "--gin.train.log_every=5",
                "--gin.train.eval_at_end=False")
  assert "Training social_chem_101_rot from step 0" in log1
  scores = _perplexities(log1, "social_chem_101_rot")
  assert sorted(scores) == [10, 20], log1[-2000:]
  best = min(scores, key=scores.get)
  # keep_best (the recipe's): the evaluated checkpoints stay besides the last one.
  kept = sorted(int(p.name.split("_")[1]) for p in stage1.glob("checkpoint_*"))
  assert kept == [10, 20, STAGE1_STEPS]

  log2 = _train("gin/canary/stage2.gin", stage2, data_root, cache,
                f"--gin.INITIAL_CHECKPOINT_PATH='{stage1}'", f"--gin.TRAIN_STEPS={STAGE2_STEPS}",
                f"--gin.train.eval_every={STAGE2_EVERY}", "--gin.train.log_every=5")
  # The best checkpoint of stage 1, not its latest (step 25), seeds stage 2.
  assert (f"INITIAL_CHECKPOINT_PATH {stage1}: its best checkpoint, step {best} "
          f"(validation perplexity {scores[best]:.4f})") in log2
  assert f"Parameters from {stage1}/checkpoint_{best}." in log2
  assert "Initialised a new model" in log2 and "Resumed" not in log2
  # Stage 2 trains on the Canary mixture and evaluates on ProsocialDialog (the recipe's
  # eval task): periodic validation perplexity, then the SeqIO evaluation at the end.
  assert "Training canary_mixture from step 0 to 10" in log2
  assert f"step {STAGE2_STEPS}/{STAGE2_STEPS} | loss" in log2
  assert sorted(_perplexities(log2, "prosocial_dialog_canary")) == [5, 10], log2[-2000:]
  assert re.search(r"eval prosocial_dialog_canary/validation: .*safety_accuracy", log2)
  assert (stage2 / f"checkpoint_{STAGE2_STEPS}" / "state").is_dir()
