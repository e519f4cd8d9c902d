"""The jit-able train step: the model's loss, its gradient, the optimizer update.

Model math lives in the model contract (`inference.model.EncoderDecoderModel`);
this is the optimizer's side. The trainer decides how the step is jit-compiled
and sharded.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def make_train_step(model, optimizer: optax.GradientTransformation, *,
                    learning_rate_fn: Callable | None = None):
  """Returns train_step(state, batch, dropout_rng) -> (state, metrics)."""

  def train_step(state, batch, dropout_rng):
    # The step's dropout key depends only on the step: a resumed run draws the same masks.
    rng = jax.random.fold_in(dropout_rng, state.step)
    (loss, aux), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(
        state.params, batch, rng)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "z_loss": aux["z_loss"],
        "accuracy": aux["correct"] / jnp.maximum(aux["num_tokens"], 1.0),
        "target_tokens": aux["num_tokens"],
        "grad_norm": optax.global_norm(grads),
    }
    if learning_rate_fn is not None:
      metrics["learning_rate"] = learning_rate_fn(state.step)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state)
    return new_state, metrics

  return train_step
