"""Learning-rate schedules (step -> rate), and reduce-on-plateau on validation perplexity.

A schedule is a plain function of the step, given to an optimizer factory
(`adam(learning_rate=@warmup_cosine())`); the optimizer keeps it, so the rate
the update uses and the rate the trainer logs come from the one object.

Reduce-on-plateau (Prost's recipe, ParlAI's `--lr-scheduler reduceonplateau`)
cannot be a function of the step: it multiplies the schedule by a scale that
drops by `factor` whenever validation perplexity has not improved for
`patience` evaluations. The scale reaches the train step as an argument and
its state (scale, best value, evaluations without improvement) is saved with
every checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import gin
import jax.numpy as jnp
import optax

logger = logging.getLogger("prosocial_jax")

Schedule = Callable[[Any], Any]


@gin.configurable
def constant(learning_rate: float = 1e-5) -> Schedule:
  return optax.constant_schedule(learning_rate)


@gin.configurable
def warmup_constant(learning_rate: float = 1e-5, warmup_steps: int = 0) -> Schedule:
  """Linear warm-up from 0 to `learning_rate`, then constant (the paper's Prost: 100 steps)."""
  if warmup_steps <= 0:
    return optax.constant_schedule(learning_rate)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, warmup_steps),
       optax.constant_schedule(learning_rate)], [warmup_steps])


@gin.configurable
def warmup_rsqrt(learning_rate: float = 0.01, warmup_steps: int = 10_000) -> Schedule:
  """T5's schedule: `learning_rate` during warm-up, then decaying as 1/sqrt(step)."""
  warmup_steps = max(warmup_steps, 1)

  def schedule(step):
    step = jnp.maximum(jnp.asarray(step, jnp.float32) + 1.0, warmup_steps)
    return learning_rate * jnp.sqrt(warmup_steps / step)

  return schedule


@gin.configurable
def warmup_cosine(learning_rate: float = 1e-4, warmup_steps: int = 0,
                  decay_steps: int = gin.REQUIRED, final_fraction: float = 0.0) -> Schedule:
  """Linear warm-up, then a cosine from `learning_rate` to `final_fraction` of it at
  `decay_steps` (counted from the start), constant after."""
  return optax.warmup_cosine_decay_schedule(
      0.0 if warmup_steps > 0 else learning_rate, learning_rate, max(warmup_steps, 0),
      decay_steps, end_value=learning_rate * final_fraction)


@gin.configurable
@dataclasses.dataclass
class ReduceOnPlateau:
  """Scales the learning rate by `factor` when validation perplexity has not improved
  (by more than `threshold`, relative) for `patience` evaluations; never below
  `min_learning_rate`."""
  factor: float = 0.5
  patience: int = 3
  threshold: float = 1e-4
  min_learning_rate: float = 0.0
  # State, saved with every checkpoint:
  scale: float = dataclasses.field(default=1.0, init=False)
  best: float | None = dataclasses.field(default=None, init=False)
  bad_evaluations: int = dataclasses.field(default=0, init=False)

  def __post_init__(self):
    if not 0.0 < self.factor < 1.0:
      raise ValueError(f"ReduceOnPlateau.factor must be in (0, 1), got {self.factor}")
    if self.patience < 0:
      raise ValueError(f"ReduceOnPlateau.patience must be >= 0, got {self.patience}")

  def update(self, perplexity: float, base_learning_rate: float, step: int) -> None:
    """Takes one validation perplexity; lowers `scale` after `patience` non-improvements."""
    if self.best is None or perplexity < self.best * (1.0 - self.threshold):
      self.best, self.bad_evaluations = perplexity, 0
      return
    self.bad_evaluations += 1
    if self.bad_evaluations <= self.patience:
      return
    floor = self.min_learning_rate / base_learning_rate if base_learning_rate > 0 else 0.0
    new_scale = max(self.scale * self.factor, floor)
    if new_scale < self.scale:
      logger.info("step %d: validation perplexity %.4f has not improved on %.4f for %d "
                  "evaluations: learning rate x%g (now %.3g)", step, perplexity, self.best,
                  self.bad_evaluations, self.factor, base_learning_rate * new_scale)
    self.scale, self.bad_evaluations = new_scale, 0

  def state_dict(self) -> dict[str, Any]:
    return {"scale": self.scale, "best": self.best, "bad_evaluations": self.bad_evaluations}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.scale = float(state["scale"])
    self.best = state["best"]
    self.bad_evaluations = int(state["bad_evaluations"])
