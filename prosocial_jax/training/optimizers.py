"""Optimizers and learning-rate schedules, gin-configurable.

The paper trains both Canary and Prost with Adam at lr 1e-5 (Prost with 100
warm-up steps); T5X users know Adafactor with an rsqrt schedule. Both are here,
as optax transformations, selected in gin with `OPTIMIZER = @adam()` etc.
"""

from __future__ import annotations

import gin
import jax.numpy as jnp
import optax


@gin.configurable
def warmup_constant(learning_rate: float = 1e-5, warmup_steps: int = 0):
  """Linear warm-up from 0 to `learning_rate`, then constant."""
  if warmup_steps <= 0:
    return optax.constant_schedule(learning_rate)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, warmup_steps),
       optax.constant_schedule(learning_rate)], [warmup_steps])


@gin.configurable
def warmup_rsqrt(learning_rate: float = 0.01, warmup_steps: int = 10_000):
  """T5's schedule: `learning_rate` during warm-up, then decaying as 1/sqrt(step)."""
  warmup_steps = max(warmup_steps, 1)

  def schedule(step):
    step = jnp.maximum(jnp.asarray(step, jnp.float32) + 1.0, warmup_steps)
    return learning_rate * jnp.sqrt(warmup_steps / step)

  return schedule


@gin.configurable
def adam(learning_rate=gin.REQUIRED,
         b1: float = 0.9,
         b2: float = 0.999,
         eps: float = 1e-8,
         weight_decay: float = 0.0,
         clip_grad_norm: float | None = None):
  """Adam (AdamW when weight_decay > 0); `learning_rate` a float or schedule."""
  parts = []
  if clip_grad_norm:
    parts.append(optax.clip_by_global_norm(clip_grad_norm))
  if weight_decay:
    parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps,
                             weight_decay=weight_decay))
  else:
    parts.append(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))
  return optax.chain(*parts) if len(parts) > 1 else parts[0]


@gin.configurable
def adafactor(learning_rate=gin.REQUIRED,
              decay_rate: float = 0.8,
              clipping_threshold: float = 1.0,
              factored: bool = True):
  """Adafactor as T5X runs it by default (factored second moments, no momentum)."""
  return optax.adafactor(learning_rate, decay_rate=decay_rate,
                         clipping_threshold=clipping_threshold,
                         multiply_by_parameter_scale=True, factored=factored)
