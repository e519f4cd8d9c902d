"""Divergence: a NaN/inf loss or gradient stops the run (or skips the update), never saved.

Two real causes, in the trainer on the shipped sample:
  a poisoned batch  one step's input tokens are replaced by a huge id (2**30, far
                    outside the vocabulary): the embedding gather gives NaN, and the
                    loss and gradients of that step are NaN;
  a rate that blows up  the learning rate becomes infinite at one step: the loss and
                    gradient norm of that step are finite, the update is not.
"""

import itertools
import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import tasks
from prosocial_jax.training import input_pipeline
from prosocial_jax.training.loop import NonFiniteError
from prosocial_jax.training.optimizers import adam

from .conftest import train_on_sample

POISONED_STEP = 6


@pytest.fixture(autouse=True)
def _reset_data_root():
  yield
  tasks.set_data_root(None)


@pytest.fixture
def poisoned_batch(monkeypatch):
  """Step POISONED_STEP's batch (the 6th the loop takes) gets a token id of 2**30."""
  real = input_pipeline.to_global_arrays
  calls = itertools.count(1)

  def poisoning(host_batch, sharding):
    if next(calls) == POISONED_STEP:
      tokens = np.array(host_batch["encoder_input_tokens"])
      tokens[0, 0] = 2**30
      host_batch = dict(host_batch, encoder_input_tokens=tokens)
    return real(host_batch, sharding)

  monkeypatch.setattr(input_pipeline, "to_global_arrays", poisoning)


def _state(model_dir, step):
  return ocp.StandardCheckpointer().restore(model_dir / f"checkpoint_{step}" / "state")


def _steps(model_dir):
  return sorted(int(p.name.split("_")[1]) for p in model_dir.glob("checkpoint_*"))


def _message(error):  # what the user sees (user_errors drops gin's "In call to ..." line)
  return str(error.value).split("\n  In call to configurable")[0]


def _all_finite(tree):
  return all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(leaf).dtype, np.inexact))


def test_a_poisoned_batch_stops_the_run_naming_step_metric_and_last_checkpoint(
    tmp_path, poisoned_batch):
  model_dir = tmp_path / "stop"
  with pytest.raises(NonFiniteError) as error:
    train_on_sample(model_dir, train_steps=8, checkpoint_every=4, log_every=100)
  assert _message(error) == (
      f"The loss became non-finite at step {POISONED_STEP}; stopping without saving (the "
      f"last good checkpoint is step 4: {model_dir}/checkpoint_4).")
  assert _steps(model_dir) == [4]  # step 8 was due, and refused
  assert _all_finite(_state(model_dir, 4))


def test_skip_mode_passes_over_the_poisoned_batch_and_trains_on(tmp_path, poisoned_batch, caplog):
  model_dir = tmp_path / "skip"
  caplog.set_level(logging.WARNING, logger="prosocial_jax")
  result = train_on_sample(model_dir, train_steps=8, checkpoint_every=1, keep_checkpoints=None,
                           log_every=4, on_nonfinite="skip")
  assert result.step == 8 and _steps(model_dir) == list(range(1, 9))
  before, skipped, after = (_state(model_dir, s) for s in (5, 6, 7))
  # The skipped step kept the parameters and the optimizer state, bit for bit.
  for key in ("params", "opt_state"):
    jax.tree.map(np.testing.assert_array_equal, before[key], skipped[key])
  assert int(skipped["step"]) == 6
  assert not np.array_equal(after["params"]["decoder"]["decoder_norm"]["scale"],
                            skipped["params"]["decoder"]["decoder_norm"]["scale"])
  assert all(_all_finite(_state(model_dir, s)) for s in _steps(model_dir))
  assert ("Skipped 1 update(s) in steps 5-8 for a non-finite loss, gradient norm or update "
          f"(the first at step {POISONED_STEP}: the loss); those batches left the parameters "
          "unchanged.") in caplog.text
  logged = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["skipped_updates"]) for r in logged] == [(4, 0.0), (8, 1.0)]
  assert all(np.isfinite(r["loss"]) for r in logged)  # the means leave the bad step out


def _rate_that_blows_up_at(step):
  return lambda count: jnp.where(count >= step, jnp.inf, 3e-3)


def test_an_update_that_overflows_is_never_saved(tmp_path):
  # Step 6 (count 5) updates with an infinite rate: its loss and gradient norm are
  # finite, the parameters it leaves are not; the save at step 6 must refuse them.
  model_dir = tmp_path / "overflow"
  with pytest.raises(NonFiniteError) as error:
    train_on_sample(model_dir, train_steps=6, checkpoint_every=3, log_every=100,
                    optimizer=adam(learning_rate=_rate_that_blows_up_at(5)))
  assert _message(error) == (
      "The train state (parameters or optimizer state) is not finite at step 6, although "
      "the loss and gradient norm were; stopping without saving (the last good checkpoint "
      f"is step 3: {model_dir}/checkpoint_3).")
  assert _steps(model_dir) == [3]


def test_an_unknown_policy_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"train.on_nonfinite must be one of \('stop', 'skip'\), "
                     r"got 'ignore'"):
    train_on_sample(tmp_path, train_steps=1, on_nonfinite="ignore")
