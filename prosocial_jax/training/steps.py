"""The jit-able step functions: train, score (log-likelihood) and their inputs.

Steps are pure functions of (state, batch, rng); the trainer decides how they are
jit-compiled and sharded. Batches are SeqIO EncDecFeatureConverter outputs:
encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
decoder_loss_weights, plus *_segment_ids / *_positions when packed.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from prosocial_jax.models.scoring import token_log_likelihoods
from prosocial_jax.training.losses import cross_entropy_loss

_PACKING_FEATURES = ("encoder_segment_ids", "decoder_segment_ids",
                     "encoder_positions", "decoder_positions")


def model_inputs(batch: dict) -> tuple[tuple, dict]:
  """Positional and keyword arguments of the encoder-decoder's __call__."""
  args = (batch["encoder_input_tokens"], batch["decoder_input_tokens"],
          batch["decoder_target_tokens"])
  kwargs = {k: batch[k] for k in _PACKING_FEATURES if k in batch}
  return args, kwargs


def make_train_step(module, optimizer: optax.GradientTransformation, *,
                    z_loss: float = 0.0, label_smoothing: float = 0.0,
                    learning_rate_fn: Callable | None = None):
  """Returns train_step(state, batch, dropout_rng) -> (state, metrics)."""

  def train_step(state, batch, dropout_rng):
    rng = jax.random.fold_in(dropout_rng, state.step)
    args, kwargs = model_inputs(batch)
    targets = batch["decoder_target_tokens"]
    weights = batch["decoder_loss_weights"]

    def loss_fn(params):
      logits = module.apply({"params": params}, *args, **kwargs,
                            enable_dropout=True, rngs={"dropout": rng})
      loss_sum, z_sum, num_tokens = cross_entropy_loss(
          logits, targets, weights, z_loss=z_loss, label_smoothing=label_smoothing)
      denominator = jnp.maximum(num_tokens, 1.0)
      correct = jnp.sum((jnp.argmax(logits, -1) == targets) * weights)
      return loss_sum / denominator, (z_sum / denominator, num_tokens, correct)

    (loss, (z_term, num_tokens, correct)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "z_loss": z_term,
        "accuracy": correct / jnp.maximum(num_tokens, 1.0),
        "target_tokens": num_tokens,
        "grad_norm": optax.global_norm(grads),
    }
    if learning_rate_fn is not None:
      metrics["learning_rate"] = learning_rate_fn(state.step)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state)
    return new_state, metrics

  return train_step


def make_score_step(module):
  """Returns score_step(params, batch) -> (sum log p(target), target tokens) per row."""

  def score_step(params, batch):
    args, kwargs = model_inputs(batch)
    logits = module.apply({"params": params}, *args, **kwargs,
                          enable_dropout=False)
    weights = batch["decoder_loss_weights"].astype(jnp.float32)
    log_likelihoods = token_log_likelihoods(logits, batch["decoder_target_tokens"])
    return jnp.sum(log_likelihoods * weights, -1), jnp.sum(weights, -1)

  return score_step
