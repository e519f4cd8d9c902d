"""Token-level losses and log-likelihoods (float32, padding masked by weights).

The one definition of each: the model contract's `loss_fn` and `score_batch`
(`inference/model.py`) and `inference.scoring.score` all use these.
"""

from __future__ import annotations

import functools

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
  nll, log_z = _token_nll_and_log_z(logits, targets, label_smoothing)
  weights = weights.astype(jnp.float32)
  z_term = z_loss * jnp.square(log_z)
  loss_sum = jnp.sum((nll + z_term) * weights)
  return loss_sum, jnp.sum(z_term * weights), jnp.sum(weights)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _token_nll_and_log_z(logits, targets, label_smoothing):
  """(-log p(target) [b, t], smoothed when asked; log Z [b, t]), both float32.

  Its own VJP writes the logits' gradient, softmax * (g_nll + g_log_z) minus
  g_nll * the (smoothed) one-hot target, in one elementwise pass. Autodiff's
  would scatter the target's gradient into a zero [b, t, vocab] buffer and add
  the softmax term to it: on a CPU, writing that buffer alone cost as much as
  the output layer's forward matmul (T5 small, vocab 32128).
  """
  return _nll_and_log_z_fwd(logits, targets, label_smoothing)[0]


def _nll_and_log_z_fwd(logits, targets, label_smoothing):
  logits32 = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits32, axis=-1)
  nll = log_z - jnp.take_along_axis(logits32, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    smooth = log_z - jnp.mean(logits32, axis=-1)  # cross entropy against uniform
    nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
  return (nll, log_z), (logits, targets, log_z)


def _nll_and_log_z_bwd(label_smoothing, residuals, cotangents):
  logits, targets, log_z = residuals
  g_nll, g_log_z = cotangents
  softmax = jnp.exp(logits.astype(jnp.float32) - log_z[..., None])
  target = jnp.arange(logits.shape[-1]) == targets[..., None]
  target_mass = (1.0 - label_smoothing) * target + label_smoothing / logits.shape[-1]
  grad = softmax * (g_nll + g_log_z)[..., None] - g_nll[..., None] * target_mass
  return grad.astype(logits.dtype), None


_token_nll_and_log_z.defvjp(_nll_and_log_z_fwd, _nll_and_log_z_bwd)


def correct_predictions(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
  """Weighted count of positions whose target has the highest logit (a tie counts
  as correct). Equal to argmax == target but for ties, and cheaper on a CPU: a
  max-reduce instead of a variadic (value, index) one, which cost as much as the
  output layer's matmul in the T5 small train step."""
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return jnp.sum((target_logits >= jnp.max(logits, axis=-1)) * weights)


def token_log_likelihoods(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """log p(target_t | ...) per position. logits [b, t, v] -> [b, t] float32."""
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [b, t]
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return target_logits - log_z
