"""The training loop: one step after another, then every action that is due.

`Loop` holds what the actions read and change (the train state, the step, the
learning-rate scale, the latest evaluation, why to stop); `run` advances it. A
behaviour — logging, evaluating, early stopping, checkpointing — is an `Action`
(`actions.py`), not a branch in this loop (T5X's `BaseAction`, Levanter's hooks).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from prosocial_jax.training import input_pipeline
from prosocial_jax.training.metrics import MetricSums, MetricsWriter

logger = logging.getLogger("prosocial_jax")


NONFINITE_POLICIES = ("stop", "skip")
# With on_nonfinite='skip', this many skipped updates in a row stop the run anyway:
# the model is not coming back by itself.
MAX_SKIPPED_IN_A_ROW = 25


class NonFiniteError(FloatingPointError):
  """The loss or the gradient norm became NaN or infinite."""


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


@functools.lru_cache(maxsize=None)
def _finiteness_check(mesh):
  return jax.jit(_all_finite, out_shardings=NamedSharding(mesh, PartitionSpec()))


@dataclasses.dataclass
class Loop:
  """The run's live state, shared by the loop and its actions."""
  model: Any
  state: Any                      # TrainState
  step: int                       # the last completed step
  train_steps: int
  mesh: Any
  rules: Any
  train_step: Callable            # jitted (state, batch, rng, lr_scale) -> (state, metrics)
  batches: Any                    # this host's input iterator (checkpointable)
  data_sharding: Any
  dropout_rng: Any
  checkpointer: Any
  meta: dict                      # what every checkpoint's metadata holds
  writer: MetricsWriter
  model_dir: str
  start_step: int = 0             # where this run (re)started
  batch: Any = None               # the latest step's global batch
  lr_scale: float = 1.0           # reduce-on-plateau's factor on the schedule
  eval_result: dict | None = None  # this step's validation metrics, when an evaluation ran
  stop_reason: str | None = None  # set by an action to end the run after this step
  preempted: str | None = None    # the signal that asked the job to stop (not saved)
  # That signal as soon as it arrives, for an action to give way mid-run (evaluations);
  # None in a multi-process job, whose hosts only learn it at the step's sync point.
  asked_to_stop: Callable[[], str | None] = lambda: None
  on_nonfinite: str = "stop"      # or "skip": the step itself skipped such updates
  last_saved_step: int | None = None  # this run's newest save, or the step it resumed from
  paused_seconds: float = 0.0     # time spent in actions since the last log (not training)
  metric_sums: MetricSums = dataclasses.field(default_factory=MetricSums)
  last_metrics: dict = dataclasses.field(default_factory=dict)  # the latest logged means

  @property
  def at_end(self) -> bool:
    return (self.step >= self.train_steps or self.stop_reason is not None
            or self.preempted is not None)

  def _last_good(self) -> str:
    if self.last_saved_step is None:
      return "no checkpoint was saved by this run"
    path = f"{self.model_dir.rstrip('/')}/checkpoint_{self.last_saved_step}"
    return f"the last good checkpoint is step {self.last_saved_step}: {path}"

  def raise_if_nonfinite(self) -> None:
    """Stops the run at the first NaN/inf loss or gradient norm, before anything is saved.

    With on_nonfinite='skip' those steps kept their parameters (the step skipped the
    update), so only a long run of them stops the job.
    """
    bad = self.metric_sums.first_nonfinite()
    if bad is None:
      return
    step, metric = bad
    if self.on_nonfinite == "skip":
      in_a_row = self.metric_sums.longest_bad_run()
      if in_a_row >= MAX_SKIPPED_IN_A_ROW:
        raise NonFiniteError(
            f"{in_a_row} updates in a row were skipped for a non-finite loss, gradient "
            f"norm or update (by step {self.step}, the first at step {step}: the {metric}); "
            f"stopping ({self._last_good()}).")
      return
    raise NonFiniteError(f"The {metric} became non-finite at step {step}; stopping "
                         f"without saving ({self._last_good()}).")

  def raise_if_state_nonfinite(self) -> None:
    """The state about to be saved must be finite, even when the loss and gradient norm
    were (an update can overflow: a learning rate that blows up)."""
    if not bool(jax.device_get(_finiteness_check(self.mesh)(self.state))):
      raise NonFiniteError(
          f"The train state (parameters or optimizer state) is not finite at step "
          f"{self.step}, although the loss and gradient norm were; stopping without "
          f"saving ({self._last_good()}).")


class Action:
  """Something the loop does every `every` steps (0: never periodically) and, with
  `at_end`, once more after the last step. `state_dict` is saved with checkpoints."""
  name = "action"
  at_end = False

  def __init__(self, every: int = 0):
    self.every = every

  def due(self, loop: Loop) -> bool:
    return bool(self.every and loop.step % self.every == 0) or (self.at_end and loop.at_end)

  def run(self, loop: Loop) -> None:
    raise NotImplementedError

  def before_step(self, loop: Loop) -> None:
    """Called before each step is started (most actions need not)."""
    del loop

  def owed(self, loop: Loop) -> bool:
    """Whether this action still owes its run at the step resumed from (an evaluation a
    SIGTERM cut short, then saved with the step); run before the first new step."""
    del loop
    return False

  # Actions that react to an evaluation's result (`loop.eval_result`) run with an owed one.
  follows_evaluation = False

  def close(self, loop: Loop) -> None:
    """Called once when the loop ends, also when it failed: release what is held."""
    del loop

  def state_dict(self) -> dict[str, Any]:
    return {}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    del state


def loop_states(actions) -> dict[str, Any]:
  """The actions' states, by name: what a checkpoint's `meta["loop"]` holds."""
  return {a.name: a.state_dict() for a in actions if a.state_dict()}


def _run_actions(loop: Loop, actions: list[Action], *, at_end_only: bool = False) -> None:
  for action in actions:
    if action.due(loop) and (action.at_end or not at_end_only):
      started = time.perf_counter()
      action.run(loop)
      if action.name != "log":
        loop.paused_seconds += time.perf_counter() - started


def run(loop: Loop, actions: list[Action], preemption=None) -> None:
  """Trains from `loop.step` to `loop.train_steps`, or until an action sets `stop_reason`.

  `preemption` (a `preemption.PreemptionWatch`) is asked before each step is started:
  once the job has been told to stop, no new step starts, and the at-end actions (log,
  save) run for the last completed one. An evaluation under way when the signal comes
  gives way at its next batch (`loop.asked_to_stop`), so that the save comes soon; an
  action that owes its run at the step resumed from (`Action.owed`) runs first.
  """
  if preemption is not None:
    loop.asked_to_stop = preemption.asked
  try:
    with loop.mesh, nn.logical_axis_rules(loop.rules):
      owed = [a for a in actions if a.owed(loop)]
      if owed:  # as the step's own actions would have: the evaluation, then its followers
        _run_actions(loop, [a for a in actions if a in owed or a.follows_evaluation])
      while not loop.at_end:
        if preemption is not None and preemption.reached(loop.step):
          loop.preempted = preemption.received
          # This step's periodic actions have run (or it is the one resumed from): only
          # the at-end ones (log, save) are left. An evaluation due again here would run
          # twice and count twice for early stopping.
          _run_actions(loop, actions, at_end_only=True)
          break
        host_batch = next(loop.batches)
        started = time.perf_counter()
        for action in actions:
          action.before_step(loop)
        loop.paused_seconds += time.perf_counter() - started
        loop.batch = input_pipeline.to_global_arrays(host_batch, loop.data_sharding)
        loop.state, metrics = loop.train_step(loop.state, loop.batch, loop.dropout_rng,
                                              np.float32(loop.lr_scale))
        loop.step += 1
        loop.metric_sums.add(metrics, loop.step)
        loop.eval_result = None
        _run_actions(loop, actions)
  finally:
    for action in actions:
      action.close(loop)
  if loop.stop_reason:
    logger.info("Stopped at step %d: %s.", loop.step, loop.stop_reason)
  jax.block_until_ready(loop.state)
