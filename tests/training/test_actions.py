"""The loop's pieces on their own: accumulation, schedules, plateau, early stopping, metrics."""

import json
import math

import jax
import numpy as np
import optax
import pytest

from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.training import actions
from prosocial_jax.training.loop import Loop, NonFiniteError
from prosocial_jax.training.metrics import MetricSums, MetricsWriter
from prosocial_jax.training.optimizers import adam
from prosocial_jax.training.schedules import ReduceOnPlateau, warmup_cosine
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import TrainState

from .conftest import dummy_batch_shapes, fixed_batch, tiny_test_config


def test_gradient_accumulation_gives_the_big_batch_update():
  model = EncoderDecoderModel(tiny_test_config())
  optimizer = adam(learning_rate=1e-2)
  params = jax.jit(model.init)(jax.random.key(0), dummy_batch_shapes())
  batch = fixed_batch(seed=5)
  batch["decoder_loss_weights"][1, :] = 0  # rows with different token counts
  batch["decoder_loss_weights"][6, 2:] = 0
  results = []
  for microbatches in (1, 2, 4):
    state = TrainState.create(params, optimizer)
    step = jax.jit(make_train_step(model, optimizer, microbatches=microbatches))
    for _ in range(3):
      state, metrics = step(state, batch, jax.random.key(1))
    results.append((jax.device_get(state.params), float(metrics["loss"])))
  (reference, loss), *accumulated = results
  for params_k, loss_k in accumulated:
    assert loss_k == pytest.approx(loss, abs=1e-5)
    # Adam divides by |g|: a gradient near 0 turns the summation order's last-bit
    # differences into ~1e-5 of parameter (a wrong weighting moves them by ~1e-2).
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=3e-5), reference, params_k)
  with pytest.raises(ValueError, match="does not divide"):
    jax.jit(make_train_step(model, optimizer, microbatches=3))(
        TrainState.create(params, optimizer), batch, jax.random.key(1))


def test_the_optimizer_carries_the_schedule_it_updates_with():
  optimizer = adam(learning_rate=warmup_cosine(learning_rate=1e-3, warmup_steps=10,
                                               decay_steps=110, final_fraction=0.1))
  assert float(optimizer.learning_rate(0)) == 0.0
  assert float(optimizer.learning_rate(10)) == pytest.approx(1e-3)
  assert float(optimizer.learning_rate(60)) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
  assert float(optimizer.learning_rate(500)) == pytest.approx(1e-4)
  params = {"w": np.ones(2, np.float32)}
  state = optimizer.init(params)
  updates, _ = optimizer.update({"w": np.ones(2, np.float32)}, state, params)
  assert float(updates["w"][0]) == 0.0  # step 0 of the warm-up: rate 0


def test_reduce_on_plateau_waits_for_patience_then_scales_down_to_the_floor():
  plateau = ReduceOnPlateau(factor=0.5, patience=2, min_learning_rate=2e-6)
  for ppl in (10.0, 9.0, 9.5, 9.2):  # improves, then two evaluations without improvement
    plateau.update(ppl, base_learning_rate=1e-5, step=0)
  assert plateau.scale == 1.0 and plateau.bad_evaluations == 2
  plateau.update(9.1, 1e-5, 0)  # the third: x0.5
  assert plateau.scale == 0.5 and plateau.bad_evaluations == 0
  for _ in range(9):
    plateau.update(9.9, 1e-5, 0)
  assert plateau.scale == pytest.approx(0.2)  # 2e-6 / 1e-5: never below the minimum
  restored = ReduceOnPlateau(factor=0.5, patience=2)
  restored.load_state_dict(json.loads(json.dumps(plateau.state_dict())))
  assert restored.state_dict() == plateau.state_dict()
  with pytest.raises(ValueError, match="factor must be in"):
    ReduceOnPlateau(factor=1.5)


class _FakeLoop:
  def __init__(self):
    self.step, self.eval_result, self.stop_reason = 0, None, None


def test_early_stopping_names_the_best_evaluation():
  stopper = actions.EarlyStopping(patience=2)
  loop = _FakeLoop()
  for step, ppl in ((10, 5.0), (20, 4.0), (30, 4.5), (40, 4.1)):
    loop.step, loop.eval_result = step, {"perplexity": ppl}
    assert stopper.due(loop)
    stopper.run(loop)
  assert loop.stop_reason == ("early stopping: validation perplexity has not improved for 2 "
                              "evaluations (best 4.0000 at step 20)")
  assert stopper.state_dict() == {"best": 4.0, "best_step": 20, "bad_evaluations": 2}


def test_metric_sums_average_the_interval_and_catch_the_first_nonfinite_step():
  sums = MetricSums()
  for step, (loss, norm) in enumerate([(2.0, 1.0), (4.0, 3.0)], start=1):
    sums.add({"loss": np.float32(loss), "grad_norm": np.float32(norm)}, step)
  assert sums.first_nonfinite() is None
  assert sums.take() == {"loss": 3.0, "grad_norm": 2.0}
  sums.add({"loss": np.float32(1.0), "grad_norm": np.float32(math.inf)}, 7)
  sums.add({"loss": np.float32(math.nan), "grad_norm": np.float32(1.0)}, 8)
  sums.add({"loss": np.float32(5.0), "grad_norm": np.float32(1.0)}, 9)
  assert sums.first_nonfinite() == (7, "grad_norm")
  assert sums.longest_bad_run() == 2
  assert sums.take() == {"loss": 5.0, "grad_norm": 1.0}  # the bad steps stay out of the means


def test_metric_sums_count_skipped_updates_and_name_a_nonfinite_update():
  sums = MetricSums()
  rows = [(1, 2.0, 0.0), (2, math.nan, 1.0), (3, 4.0, 0.0), (4, 3.0, 1.0)]  # step 4: update
  for step, loss, skipped in rows:
    sums.add({"loss": np.float32(loss), "grad_norm": np.float32(1.0),
              "skipped_update": np.float32(skipped)}, step)
  assert sums.first_nonfinite() == (2, "loss")
  assert sums.longest_bad_run() == 1
  assert sums.take() == {"loss": 3.0, "grad_norm": 1.0, "skipped_updates": 2.0}
  sums.add({"loss": np.float32(2.0), "grad_norm": np.float32(1.0),
            "skipped_update": np.float32(1.0)}, 5)
  assert sums.first_nonfinite() == (5, "update")
  assert sums.longest_bad_run() == 2  # steps 4 and 5: a run across the intervals
  means = sums.take()  # an interval of skipped updates only: no means, not zeros
  assert math.isnan(means["loss"]) and math.isnan(means["grad_norm"])
  assert means["skipped_updates"] == 1.0


def test_the_loop_refuses_to_go_on_after_a_nonfinite_loss(tmp_path):
  loop = Loop(model=None, state=None, step=3, train_steps=9, mesh=None, rules=None,
              train_step=None, batches=None, data_sharding=None, dropout_rng=None,
              checkpointer=None, meta={}, writer=None, model_dir=str(tmp_path))
  loop.last_saved_step = 2
  loop.metric_sums.add({"loss": np.float32(math.nan), "grad_norm": np.float32(1.0)}, 3)
  expected = (f"The loss became non-finite at step 3; stopping without saving (the last good "
              f"checkpoint is step 2: {tmp_path}/checkpoint_2).")
  with pytest.raises(NonFiniteError) as error:
    loop.raise_if_nonfinite()
  assert str(error.value) == expected


def test_skip_mode_stops_only_after_too_many_skipped_updates_in_a_row(tmp_path):
  from prosocial_jax.training.loop import MAX_SKIPPED_IN_A_ROW
  loop = Loop(model=None, state=None, step=0, train_steps=99, mesh=None, rules=None,
              train_step=None, batches=None, data_sharding=None, dropout_rng=None,
              checkpointer=None, meta={}, writer=None, model_dir=str(tmp_path),
              on_nonfinite="skip")
  bad = {"loss": np.float32(math.nan), "grad_norm": np.float32(1.0),
         "skipped_update": np.float32(1.0)}
  for _ in range(MAX_SKIPPED_IN_A_ROW - 1):
    loop.step += 1
    loop.metric_sums.add(bad, loop.step)
  loop.raise_if_nonfinite()  # one short of the limit: the run goes on
  loop.step += 1
  loop.metric_sums.add(bad, loop.step)
  with pytest.raises(NonFiniteError) as error:
    loop.raise_if_nonfinite()
  assert str(error.value) == (
      f"{MAX_SKIPPED_IN_A_ROW} updates in a row were skipped for a non-finite loss, gradient "
      f"norm or update (by step {MAX_SKIPPED_IN_A_ROW}, the first at step 1: the loss); "
      "stopping (no checkpoint was saved by this run).")


def test_metrics_jsonl_has_one_object_per_write_and_forgets_recomputed_steps(tmp_path):
  writer = MetricsWriter(str(tmp_path))
  writer.write(10, {"loss": 2.5, "timing/mfu": 0.1})
  writer.write(20, {"loss": 2.0, "eval/perplexity": math.inf})
  writer.close()
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert lines == [{"step": 10, "loss": 2.5, "timing/mfu": 0.1},
                   {"step": 20, "loss": 2.0, "eval/perplexity": "inf"}]
  resumed = MetricsWriter(str(tmp_path), start_step=10)  # resumed from checkpoint_10
  resumed.write(20, {"loss": 1.9})
  resumed.close()
  steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == [10, 20]


class _Recorder(actions.Action):
  name, at_end = "recorder", True

  def __init__(self):
    super().__init__(0)
    self.steps = []

  def run(self, loop):
    self.steps.append(loop.step)


def test_sigterm_lets_the_step_in_flight_finish_then_runs_the_at_end_actions(tmp_path):
  import itertools
  import os
  import signal

  from prosocial_jax.partitioning import MeshShape, batch_sharding, create_mesh, logical_axis_rules
  from prosocial_jax.training.loop import run
  from prosocial_jax.training.preemption import PreemptionWatch

  def step(state, batch, rng, lr_scale):
    if state == 3:  # the signal arrives while step 4 runs
      os.kill(os.getpid(), signal.SIGTERM)
    return state + 1, {"loss": np.float32(1.0), "grad_norm": np.float32(1.0)}

  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  loop = Loop(model=None, state=0, step=0, train_steps=10, mesh=mesh, rules=logical_axis_rules(),
              train_step=step, batches=itertools.repeat({"x": np.zeros((8, 2), np.int32)}),
              data_sharding=batch_sharding(mesh), dropout_rng=None, checkpointer=None, meta={},
              writer=None, model_dir=str(tmp_path))
  recorder = _Recorder()
  periodic = _Recorder()  # e.g. an evaluation every 2 steps
  periodic.every, periodic.at_end = 2, False
  absorb = lambda *_: None  # the test process never dies of it, whatever happens
  previous = signal.signal(signal.SIGTERM, absorb)
  try:
    with PreemptionWatch() as watch:
      run(loop, [periodic, recorder], preemption=watch)
    assert signal.getsignal(signal.SIGTERM) is absorb  # handed back
  finally:
    signal.signal(signal.SIGTERM, previous)
  assert (loop.step, loop.state, loop.preempted, loop.stop_reason) == (4, 4, "SIGTERM", None)
  assert recorder.steps == [4]  # once, for the step that was in flight
  assert periodic.steps == [2, 4]  # step 4's evaluation ran once, not again at the stop
