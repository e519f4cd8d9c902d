"""Optimizers, gin-configurable: Adam (the paper's) and Adafactor (T5X's default).

Each factory returns an `Optimizer`: the optax transformation plus the learning
rate schedule it was built with, so the trainer logs the rate the update uses
(`schedules.py` holds the schedules). `train.reduce_on_plateau` scales the
final update, which for these optimizers is the same as scaling the rate.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import gin
import optax

from prosocial_jax.models.errors import ConfigError
from prosocial_jax.training import adafactor as adafactor_links
from prosocial_jax.training import schedules  # noqa: F401 (registers the schedules with gin)


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """An optax transformation and its learning-rate schedule (step -> rate)."""
  transform: optax.GradientTransformation
  learning_rate: Callable[[Any], Any]

  def init(self, params):
    return self.transform.init(params)

  def update(self, grads, state, params=None):
    return self.transform.update(grads, state, params)


def _schedule(learning_rate) -> Callable[[Any], Any]:
  return learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)


def as_optimizer(optimizer) -> Optimizer:
  """An `Optimizer` as it is, or a bare optax transformation (its rate then unknown: 0)."""
  if isinstance(optimizer, Optimizer):
    return optimizer
  return Optimizer(optimizer, optax.constant_schedule(0.0))


@gin.configurable
def adam(learning_rate=gin.REQUIRED,
         b1: float = 0.9,
         b2: float = 0.999,
         eps: float = 1e-8,
         weight_decay: float = 0.0,
         clip_grad_norm: float | None = None,
         mu_dtype: str | None = None) -> Optimizer:
  """Adam (AdamW when weight_decay > 0); `learning_rate` a float or a schedule.

  `mu_dtype="bfloat16"` keeps the first moment in bf16: a quarter less optimizer
  and checkpoint memory (Prost 2.7B: 5.4 of 21.6 GB of Adam state). The second
  moment stays float32: its square-root denominator is what bf16 rounding would
  upset (optax casts only `mu`)."""
  schedule = _schedule(learning_rate)
  if mu_dtype not in (None, "float32", "bfloat16"):
    raise ConfigError(f"adam.mu_dtype must be 'float32' or 'bfloat16', got {mu_dtype!r}")
  parts = []
  if clip_grad_norm:
    parts.append(optax.clip_by_global_norm(clip_grad_norm))
  if weight_decay:
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                             mu_dtype=mu_dtype))
  else:
    parts.append(optax.adam(schedule, b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype))
  return Optimizer(optax.chain(*parts) if len(parts) > 1 else parts[0], schedule)


@gin.configurable
def adafactor(learning_rate=gin.REQUIRED,
              decay_rate: float = 0.8,
              clipping_threshold: float = 1.0,
              factored: bool = True) -> Optimizer:
  """Adafactor as T5X runs it by default (factored second moments, no momentum):
  `optax.adafactor`'s update and state, computed as `training/adafactor.py` does."""
  schedule = _schedule(learning_rate)
  return Optimizer(adafactor_links.adafactor(schedule, decay_rate=decay_rate,
                                             clipping_threshold=clipping_threshold,
                                             factored=factored),
                   schedule)
