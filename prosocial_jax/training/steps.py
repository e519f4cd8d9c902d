"""The jit-able train step: the model's loss, its gradient, the optimizer update.

Model math lives in the model contract (`inference.model.EncoderDecoderModel`);
this is the optimizer's side. The trainer decides how the step is jit-compiled
and sharded.

Gradient accumulation (`microbatches` > 1) splits the batch into equal
microbatches, runs them one after another (`lax.scan`) and weights each one's
gradient by its target tokens, so the update equals the big batch's (the loss
is a mean over all target tokens of the batch). Microbatch j takes rows j,
j + k, j + 2k, ...: with the batch split over the data axes, every device keeps
its share of every microbatch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from prosocial_jax.training.optimizers import as_optimizer


def _split_microbatches(batch, microbatches: int):
  def split(x):
    if x.shape[0] % microbatches:
      raise ValueError(f"train.microbatches={microbatches} does not divide the per-step "
                       f"batch of {x.shape[0]} rows")
    rows = x.reshape((x.shape[0] // microbatches, microbatches) + x.shape[1:])
    return jnp.swapaxes(rows, 0, 1)  # [microbatches, rows / microbatches, ...]
  return jax.tree.map(split, batch)


def _loss_and_grads(model, params, batch, rng, microbatches: int):
  """(loss, aux, grads) of the whole batch; aux sums num_tokens and correct."""
  grad_fn = jax.value_and_grad(model.loss_fn, has_aux=True)
  if microbatches == 1:
    (loss, aux), grads = grad_fn(params, batch, rng)
    return loss, aux, grads

  def accumulate(carry, inputs):
    index, microbatch = inputs
    (loss, aux), grads = grad_fn(params, microbatch, jax.random.fold_in(rng, index))
    tokens = aux["num_tokens"]
    weighted = jax.tree.map(lambda g: g * tokens, grads)
    sums = {"grads": weighted, "loss": loss * tokens, "z_loss": aux["z_loss"] * tokens,
            "num_tokens": tokens, "correct": aux["correct"]}
    return jax.tree.map(jnp.add, carry, sums), None

  zeros = {"grads": jax.tree.map(jnp.zeros_like, params), "loss": 0.0, "z_loss": 0.0,
           "num_tokens": 0.0, "correct": 0.0}
  zeros = jax.tree.map(lambda x: jnp.zeros_like(x, jnp.float32), zeros)
  sums, _ = jax.lax.scan(accumulate, zeros,
                         (jnp.arange(microbatches), _split_microbatches(batch, microbatches)))
  tokens = jnp.maximum(sums["num_tokens"], 1.0)
  grads = jax.tree.map(lambda g: g / tokens, sums["grads"])
  aux = {"z_loss": sums["z_loss"] / tokens, "num_tokens": sums["num_tokens"],
         "correct": sums["correct"]}
  return sums["loss"] / tokens, aux, grads


def _keep_if(ok, new, old):
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def make_train_step(model, optimizer, *, microbatches: int = 1, scale_updates: bool = False,
                    skip_nonfinite: bool = False):
  """Returns train_step(state, batch, dropout_rng, lr_scale=1.0) -> (state, metrics).

  `optimizer` is an `optimizers.Optimizer` (its schedule gives the logged rate) or
  a bare optax transformation. With `scale_updates` (reduce-on-plateau), `lr_scale`
  multiplies the update; without, the step has no such multiply, which would
  change XLA's fused multiply-adds and so the last bit of every parameter.
  With `skip_nonfinite` (train.on_nonfinite='skip'), a step whose loss, gradient
  norm or update is not finite keeps the previous parameters and optimizer state
  (the step counter still advances: that batch is passed over) and reports
  `skipped_update` = 1; without, the step has no such check.
  """
  optimizer = as_optimizer(optimizer)
  if microbatches < 1:
    raise ValueError(f"train.microbatches must be >= 1, got {microbatches}")

  def train_step(state, batch, dropout_rng, lr_scale=1.0):
    # The step's dropout key depends only on the step: a resumed run draws the same masks.
    rng = jax.random.fold_in(dropout_rng, state.step)
    loss, aux, grads = _loss_and_grads(model, state.params, batch, rng, microbatches)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    if scale_updates:
      updates = jax.tree.map(lambda u: u * jnp.asarray(lr_scale, u.dtype), updates)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.global_norm(grads)
    skipped = {}
    if skip_nonfinite:
      ok = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
            & jnp.isfinite(optax.global_norm(updates)))
      params = _keep_if(ok, params, state.params)
      opt_state = _keep_if(ok, opt_state, state.opt_state)
      skipped = {"skipped_update": 1.0 - ok.astype(jnp.float32)}
    metrics = {
        "loss": loss,
        "z_loss": aux["z_loss"],
        "accuracy": aux["correct"] / jnp.maximum(aux["num_tokens"], 1.0),
        "target_tokens": aux["num_tokens"],
        "input_tokens": jnp.sum(batch["encoder_input_tokens"] > 0).astype(jnp.float32),
        "grad_norm": grad_norm,
        "learning_rate": optimizer.learning_rate(state.step) * (lr_scale if scale_updates else 1),
        **skipped,
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics

  return train_step
