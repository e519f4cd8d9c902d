"""Token-level losses and log-likelihoods (float32, padding masked by weights).

The one definition of each: the model contract's `loss_fn` and `score_batch`
(`inference/model.py`) and `inference.scoring.score` all use these.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy_loss(logits: jax.Array,
                       targets: jax.Array,
                       weights: jax.Array,
                       z_loss: float = 0.0,
                       label_smoothing: float = 0.0):
  """Weighted token cross entropy with optional z-loss and label smoothing.

  Returns (loss_sum, z_loss_sum, weight_sum); callers divide by weight_sum so
  packed and padded batches give per-token means. z-loss (T5X / PaLM) keeps
  log Z near 0, which stabilises bf16 training of large models.
  """
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [b, t]
  log_probs = logits - log_z[..., None]  # [b, t, v]
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    smooth = -jnp.mean(log_probs, axis=-1)  # cross entropy against uniform
    nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
  weights = weights.astype(jnp.float32)
  z_term = z_loss * jnp.square(log_z)
  loss_sum = jnp.sum((nll + z_term) * weights)
  return loss_sum, jnp.sum(z_term * weights), jnp.sum(weights)


def token_log_likelihoods(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """log p(target_t | ...) per position. logits [b, t, v] -> [b, t] float32."""
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [b, t]
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return target_logits - log_z
