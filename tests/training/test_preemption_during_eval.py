"""SIGTERM during a periodic evaluation: the evaluation gives way at its next batch, the
step is saved and the job exits with 143, so that a preemption's short grace period is
spent on the save, not on finishing the metrics."""

import json
import logging
import os
import signal

import pytest

import tasks
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.evaluation import evaluator
from prosocial_jax.evaluation.evaluator import EvaluationInterrupted, stoppable
from prosocial_jax.evaluation.perplexity import ValidationPerplexity
from prosocial_jax.partitioning import MeshShape, create_mesh, logical_axis_rules
from prosocial_jax.training.preemption import EXIT_STATUS

from .conftest import TRAIN_LENGTHS, train_on_sample


@pytest.fixture
def sigterm_absorbed():
  """Whatever happens, the test process never dies of its own SIGTERM."""
  previous = signal.signal(signal.SIGTERM, lambda *_: None)
  yield
  signal.signal(signal.SIGTERM, previous)


def test_stoppable_asks_before_every_batch():
  asked = iter([None, None, "SIGTERM", "SIGTERM"])
  calls = []
  checked = stoppable(lambda batch: calls.append(batch) or batch, lambda: next(asked))
  assert [checked(1), checked(2)] == [1, 2]
  with pytest.raises(EvaluationInterrupted, match=r"asked to stop \(SIGTERM\)"):
    checked(3)
  assert calls == [1, 2]  # the third batch never ran
  assert stoppable(len, None) is len


def test_validation_perplexity_stops_scoring_when_asked():
  import jax
  import numpy as np
  tasks.set_data_root(sample_data_root())
  try:
    perplexity = ValidationPerplexity("prosocial_dialog_canary", TRAIN_LENGTHS, batch_size=2)
  finally:
    tasks.set_data_root(None)
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  scored = []

  def score(params, batch):
    scored.append(batch)
    return -np.ones(2, np.float32), np.ones(2, np.float32)

  whole = perplexity(score, None, mesh, logical_axis_rules())
  batches = len(scored)
  assert batches >= 3 and whole["perplexity"] == pytest.approx(np.e)
  scored.clear()
  with pytest.raises(EvaluationInterrupted):
    perplexity(score, None, mesh, logical_axis_rules(),
               should_stop=lambda: "SIGTERM" if len(scored) == 2 else None)
  assert len(scored) == 2


def test_sigterm_during_a_decode_evaluation_abandons_it_and_saves_the_step(
    tmp_path, monkeypatch, caplog, sigterm_absorbed):
  real_batches = evaluator._padded_batches
  yielded = []

  def signalled(dataset, batch_size):  # SIGTERM arrives while the first batch is decoded
    for item in real_batches(dataset, batch_size):
      yielded.append(item)
      if len(yielded) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
      yield item

  monkeypatch.setattr(evaluator, "_padded_batches", signalled)
  caplog.set_level(logging.INFO, logger="prosocial_jax")
  settings = dict(train_steps=12, eval_every=10, eval_decode=True, eval_batch_size=8,
                  checkpoint_every=1000)
  try:
    with pytest.raises(SystemExit) as stopped:
      train_on_sample(tmp_path, **settings)
  finally:
    tasks.set_data_root(None)
  assert stopped.value.code == EXIT_STATUS
  assert len(yielded) == 2  # the batch fetched after the signal was never decoded
  assert caplog.text.count("step 10: SIGTERM received during the evaluation: abandoned, so "
                           "that the step is saved at once (the resumed run evaluates it "
                           "first).") == 1  # not evaluated again at the stop
  assert "SIGTERM received: stopped after step 10 and saved" in caplog.text
  assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == ["checkpoint_10"]
  logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in logged] == [10]
  assert not [k for r in logged for k in r if k.startswith("eval/")]  # nothing half-done
  assert not list(tmp_path.glob("eval/*.json"))  # no evaluation record either

  monkeypatch.setattr(evaluator, "_padded_batches", real_batches)
  caplog.clear()
  try:
    result = train_on_sample(tmp_path, **settings)
  finally:
    tasks.set_data_root(None)
  assert result.step == 12
  assert "Resumed from" in caplog.text and "at step 10." in caplog.text
  # The abandoned evaluation is owed: the resumed run does it before its first step, so
  # early stopping and reduce-on-plateau see every evaluation an uninterrupted run would.
  lines = caplog.text.splitlines()
  redone = next(i for i, l in enumerate(lines) if "step 10: validation perplexity" in l)
  assert redone < next(i for i, l in enumerate(lines) if "step 12/12" in l)
  assert list(tmp_path.glob("eval/*-step10.json"))  # the decode half recorded too
  logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in logged if "eval/perplexity" in r] == [10]
