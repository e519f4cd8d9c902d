"""The training loop: one step after another, then every action that is due.

`Loop` holds what the actions read and change (the train state, the step, the
learning-rate scale, the latest evaluation, why to stop); `run` advances it. A
behaviour — logging, evaluating, early stopping, checkpointing — is an `Action`
(`actions.py`), not a branch in this loop (T5X's `BaseAction`, Levanter's hooks).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from prosocial_jax.training import input_pipeline
from prosocial_jax.training.metrics import MetricSums, MetricsWriter

logger = logging.getLogger("prosocial_jax")


class NonFiniteError(FloatingPointError):
  """The loss or the gradient norm became NaN or infinite."""


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
  lr_scale: float = 1.0           # reduce-on-plateau's factor on the schedule
  eval_result: dict | None = None  # this step's validation metrics, when an evaluation ran
  stop_reason: str | None = None  # set by an action to end the run after this step
  last_saved_step: int | None = None
  paused_seconds: float = 0.0     # time spent in actions since the last log (not training)
  metric_sums: MetricSums = dataclasses.field(default_factory=MetricSums)
  last_metrics: dict = dataclasses.field(default_factory=dict)  # the latest logged means

  @property
  def at_end(self) -> bool:
    return self.step >= self.train_steps or self.stop_reason is not None

  def raise_if_nonfinite(self) -> None:
    """Stops the run at the first NaN/inf loss or gradient norm, before anything is saved."""
    bad = self.metric_sums.first_nonfinite()
    if bad is not None:
      step, metric = bad
      last = (f"the last good checkpoint is step {self.last_saved_step} in {self.model_dir}"
              if self.last_saved_step is not None else "no checkpoint was saved by this run")
      raise NonFiniteError(f"The {metric} became non-finite at step {step}; stopping "
                           f"without saving ({last}).")


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

  def state_dict(self) -> dict[str, Any]:
    return {}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    del state


def loop_states(actions) -> dict[str, Any]:
  """The actions' states, by name: what a checkpoint's `meta["loop"]` holds."""
  return {a.name: a.state_dict() for a in actions if a.state_dict()}


def run(loop: Loop, actions: list[Action]) -> None:
  """Trains from `loop.step` to `loop.train_steps`, or until an action sets `stop_reason`."""
  with loop.mesh, nn.logical_axis_rules(loop.rules):
    while not loop.at_end:
      host_batch = next(loop.batches)
      loop.state, metrics = loop.train_step(
          loop.state, input_pipeline.to_global_arrays(host_batch, loop.data_sharding),
          loop.dropout_rng, np.float32(loop.lr_scale))
      loop.step += 1
      loop.metric_sums.add(metrics, loop.step)
      loop.eval_result = None
      for action in actions:
        if action.due(loop):
          started = time.perf_counter()
          action.run(loop)
          if action.name != "log":
            loop.paused_seconds += time.perf_counter() - started
  if loop.stop_reason:
    logger.info("Stopped at step %d: %s.", loop.step, loop.stop_reason)
  jax.block_until_ready(loop.state)
