"""The trainer end to end, in process, on the shipped sample with a tiny T5.

The sample's 106 training turns are memorised within a few dozen steps, so the
validation perplexity soon rises: early stopping and reduce-on-plateau have
something real to react to.
"""

import dataclasses
import json
import logging

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import tasks
from prosocial_jax.checkpoints.importers import CheckpointImportError
from prosocial_jax.training.initial_checkpoint import InitialCheckpointError, load_initial_params
from prosocial_jax.training.loop import NonFiniteError
from prosocial_jax.training.optimizers import adam
from prosocial_jax.training.schedules import ReduceOnPlateau

from .conftest import sample_model_config, train_on_sample as _train


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("early")
  result = _train(model_dir, train_steps=400, eval_every=10, early_stopping_patience=3,
                  keep_best=True, keep_checkpoints=1, checkpoint_every=1000,
                  reduce_on_plateau=ReduceOnPlateau(factor=0.5, patience=1))
  yield model_dir, result
  tasks.set_data_root(None)


def _jsonl(model_dir):
  return [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]


def test_early_stopping_keeps_the_best_and_the_last_checkpoint(stopped_run):
  model_dir, result = stopped_run
  assert result.stop_reason.startswith("early stopping: validation perplexity has not "
                                       "improved for 3 evaluations (best ")
  evaluations = {r["step"]: r["eval/perplexity"] for r in _jsonl(model_dir)
                 if "eval/perplexity" in r}
  assert len(evaluations) >= 4 and result.step < 400 and result.step % 10 == 0
  best_step = min(evaluations, key=evaluations.get)
  assert f"best {evaluations[best_step]:.4f} at step {best_step}" in result.stop_reason
  kept = sorted(int(p.name.split("_")[1]) for p in model_dir.glob("checkpoint_*"))
  assert kept == sorted({best_step, result.step})
  meta = json.loads((model_dir / f"checkpoint_{result.step}" / "meta" / "metadata").read_text())
  assert meta["loop"]["stop_reason"] == result.stop_reason
  assert meta["loop"]["early_stopping"]["best_step"] == best_step


def test_metrics_are_interval_means_with_the_learning_rate_reduced_on_plateau(stopped_run):
  model_dir, result = stopped_run
  train_lines = [r for r in _jsonl(model_dir) if "loss" in r]
  assert [r["step"] for r in train_lines] == list(range(10, result.step + 1, 10))
  assert {"loss", "accuracy", "grad_norm", "learning_rate", "timing/steps_per_second",
          "timing/tokens_per_second"} <= set(train_lines[0])
  rates = [r["learning_rate"] for r in train_lines]
  assert rates[0] == pytest.approx(3e-3, rel=1e-6)
  assert min(rates) == pytest.approx(1.5e-3, rel=1e-6) or min(rates) < 1.5e-3  # halved
  assert all(b <= a for a, b in zip(rates, rates[1:]))


def test_a_stopped_run_stays_stopped(stopped_run):
  model_dir, result = stopped_run
  again = _train(model_dir, train_steps=400, eval_every=10, early_stopping_patience=3,
                 keep_best=True, keep_checkpoints=1, checkpoint_every=1000,
                 reduce_on_plateau=ReduceOnPlateau(factor=0.5, patience=1))
  assert again.step == result.step and again.stop_reason == result.stop_reason


def test_initial_checkpoint_path_takes_the_best_parameters(stopped_run, tmp_path, caplog):
  model_dir, _ = stopped_run
  evaluations = {r["step"]: r["eval/perplexity"] for r in _jsonl(model_dir)
                 if "eval/perplexity" in r}
  best_step = min(evaluations, key=evaluations.get)
  saved = ocp.StandardCheckpointer().restore(model_dir / f"checkpoint_{best_step}" / "state")
  meta = json.loads((model_dir / f"checkpoint_{best_step}" / "meta" / "metadata").read_text())
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), saved["params"])
  params = load_initial_params(str(model_dir), meta["param_shapes"], target)
  jax.tree.map(np.testing.assert_array_equal, params, saved["params"])

  # A new run seeded from it starts from those parameters and trains on.
  seeded = _train(tmp_path / "seeded", train_steps=2, initial_checkpoint_path=str(model_dir),
                  log_every=1)
  assert seeded.step == 2
  # Resumed, the run continues from its own checkpoint and says the seed is not read.
  caplog.set_level("INFO", logger="prosocial_jax")
  resumed = _train(tmp_path / "seeded", train_steps=3, initial_checkpoint_path=str(model_dir),
                   log_every=1)
  assert resumed.step == 3
  assert (f"INITIAL_CHECKPOINT_PATH ({model_dir}) is not read: MODEL_DIR holds this run's "
          "checkpoints, and a run resumes from its own.") in caplog.text

  foreign = tmp_path / "t5x" / "checkpoint_1000700"
  foreign.mkdir(parents=True)
  (foreign / "checkpoint").write_bytes(b"msgpack")
  with pytest.raises(CheckpointImportError, match="Cannot tell the format of .*checkpoint_1000700"):
    load_initial_params(str(foreign), meta["param_shapes"], target)

  wrong = dict(meta["param_shapes"], **{"encoder/encoder_norm/scale": [64]})
  with pytest.raises(InitialCheckpointError, match=r"encoder/encoder_norm/scale: checkpoint "
                     r"\[32\], this model \[64\]"):
    load_initial_params(str(model_dir / f"checkpoint_{best_step}"), wrong, target)


def test_initial_checkpoint_mismatches_name_the_config_field_and_the_vocabulary(stopped_run,
                                                                               caplog):
  model_dir, _ = stopped_run
  step = max(int(p.name.split("_")[1]) for p in model_dir.glob("checkpoint_*"))
  meta = json.loads((model_dir / f"checkpoint_{step}" / "meta" / "metadata").read_text())
  saved = ocp.StandardCheckpointer().restore(model_dir / f"checkpoint_{step}" / "state")
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), saved["params"])
  bigger = dataclasses.replace(sample_model_config(), vocab_size=2048)
  shapes = dict(meta["param_shapes"], **{"token_embedder/embedding": [2048, 32]})
  with pytest.raises(InitialCheckpointError, match=r"(?s)token_embedder/embedding: checkpoint "
                     r"\[1024, 32\], this model \[2048, 32\].*The model configs differ in:\n"
                     r"  model_config.vocab_size: checkpoint 1024, this model 2048"):
    load_initial_params(str(model_dir / f"checkpoint_{step}"), shapes, target,
                        model_config=bigger)
  # Same shapes, another SentencePiece model: loaded, with a warning naming both.
  other = dict(meta["vocabulary"], source="/elsewhere/other.model", sha256="0" * 64)
  caplog.set_level(logging.WARNING, logger="prosocial_jax")
  params = load_initial_params(str(model_dir / f"checkpoint_{step}"), meta["param_shapes"],
                               target, model_config=sample_model_config(), vocabulary=other)
  jax.tree.map(np.testing.assert_array_equal, params, saved["params"])
  assert caplog.text.count("was trained with another vocabulary than this run's") == 1
  assert "/elsewhere/other.model (sha256 000000000000…)" in caplog.text


def test_a_diverging_run_stops_before_saving_a_nonfinite_state(tmp_path):
  with pytest.raises(NonFiniteError, match=r"became non-finite at step \d+; stopping without "
                     rf"saving \(the last good checkpoint is step \d+: {tmp_path}/nan/checkpoint_\d+\)"):
    _train(tmp_path / "nan", train_steps=60, optimizer=adam(learning_rate=1e9),
           checkpoint_every=1, log_every=1)
  for checkpoint in (tmp_path / "nan").glob("checkpoint_*"):
    state = ocp.StandardCheckpointer().restore(checkpoint / "state")
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state["params"]))
