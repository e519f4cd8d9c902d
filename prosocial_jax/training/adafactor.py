"""Adafactor as `optax.adafactor` computes it, in a form XLA:CPU runs fast.

The chain, its hyperparameters and its state are optax's (a checkpoint written
with either restores into the other); two links are replaced by equivalents
that lower better:

* `scale_by_factored_rms`: optax materialises grad**2 + eps for its two means,
  and the mean over the leading axis of a wide matrix (the [512, 32128] output
  layer of T5 small) goes to a reduction XLA:CPU runs ~15x slower than the same
  sum over the last axis (49 vs 3 ms on a 2-core EPYC). Here each mean squares
  the gradient itself, and a leading-axis sum of a wide matrix is
  `models.reductions.sum_leading` (4 ms).
* `scale_by_param_block_rms`: optax's `safe_root_mean_squares` is written to be
  differentiable at 0: it selects a whole copy of the parameter and reduces it a
  second time. An optimizer update is never differentiated, so here it is
  `max(rms(p), 1e-3)`: the same value, one read of the parameter.

Measured on the T5 v1.1-small update alone (`bench/train_step_speed.py` shape):
see the README's benchmark section. Parity with `optax.adafactor` over several
steps is asserted in tests/training/test_adafactor.py.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prosocial_jax.models import reductions

# A leading-axis mean whose rows are at least this long goes through `sum_leading`.
_WIDE_ROW = 8192


def _mean_of_squares(grad: jax.Array, axis: int, epsilon: float) -> jax.Array:
  """mean(grad**2 + epsilon, axis), the square recomputed inside the reduction."""
  square = lambda g: jnp.square(g) + epsilon
  row = int(np.prod(grad.shape[axis + 1:]))
  if axis == 0 and grad.ndim > 1 and row >= _WIDE_ROW:
    return reductions.sum_leading(grad, square) / grad.shape[0]
  return jnp.mean(square(grad), axis=axis)


def _factored_dims(shape, factored: bool, min_dim_size_to_factor: int) -> Optional[tuple[int, int]]:
  """optax's rule: the two largest axes, if the smaller of them is long enough."""
  if not factored or len(shape) < 2:
    return None
  order = np.argsort(shape)
  if shape[order[-2]] < min_dim_size_to_factor:
    return None
  return int(order[-2]), int(order[-1])


def scale_by_factored_rms(factored: bool = True, decay_rate: float = 0.8,
                          min_dim_size_to_factor: int = 128,
                          epsilon: float = 1e-30) -> optax.GradientTransformation:
  """`optax.scale_by_factored_rms` (no step offset), its state and its update."""
  reference = optax.scale_by_factored_rms(factored=factored, decay_rate=decay_rate,
                                          min_dim_size_to_factor=min_dim_size_to_factor,
                                          epsilon=epsilon)

  def update_fn(grads, state, params):
    if params is None:
      raise ValueError("adafactor needs the parameters in update()")
    t = jnp.asarray(state.count + 1, jnp.float32)
    decay = 1.0 - t ** (-decay_rate)

    def one(grad, v_row, v_col, v, param):
      dims = _factored_dims(param.shape, factored, min_dim_size_to_factor)
      if dims is None:
        new_v = (decay * v + (1.0 - decay) * (jnp.square(grad) + epsilon)).astype(param.dtype)
        return grad * new_v ** -0.5, v_row, v_col, new_v
      d1, d0 = dims
      new_v_row = (decay * v_row + (1.0 - decay) * _mean_of_squares(grad, d0, epsilon))
      new_v_col = (decay * v_col + (1.0 - decay) * _mean_of_squares(grad, d1, epsilon))
      new_v_row, new_v_col = new_v_row.astype(param.dtype), new_v_col.astype(param.dtype)
      reduced_d1 = d1 - 1 if d1 > d0 else d1
      row_factor = (new_v_row / jnp.mean(new_v_row, axis=reduced_d1, keepdims=True)) ** -0.5
      update = (grad * jnp.expand_dims(row_factor, axis=d0)
                * jnp.expand_dims(new_v_col ** -0.5, axis=d1))
      return update, new_v_row, new_v_col, v

    out = jax.tree.map(one, grads, state.v_row, state.v_col, state.v, params)
    is_tuple = lambda x: isinstance(x, tuple)
    pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=is_tuple)
    return pick(0), optax.FactoredState(count=optax.safe_increment(state.count),
                                        v_row=pick(1), v_col=pick(2), v=pick(3))

  return optax.GradientTransformation(reference.init, update_fn)


def scale_by_param_block_rms(min_scale: float = 1e-3) -> optax.GradientTransformation:
  """`optax.scale_by_param_block_rms`: each update times max(rms(param), min_scale)."""
  def update_fn(updates, state, params):
    if params is None:
      raise ValueError("adafactor needs the parameters in update()")
    scale = lambda p: jnp.maximum(jnp.sqrt(jnp.mean(jnp.square(p))), min_scale)
    return jax.tree.map(lambda u, p: u * scale(p), updates, params), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def adafactor(learning_rate, decay_rate: float = 0.8, clipping_threshold: Optional[float] = 1.0,
              factored: bool = True) -> optax.GradientTransformation:
  """`optax.adafactor(learning_rate, decay_rate=..., clipping_threshold=...,
  multiply_by_parameter_scale=True, factored=...)` with the links above."""
  links = [scale_by_factored_rms(factored=factored, decay_rate=decay_rate)]
  if clipping_threshold is not None:
    links.append(optax.clip_by_block_rms(clipping_threshold))
  links += [optax.scale_by_learning_rate(learning_rate, flip_sign=False),
            scale_by_param_block_rms(), optax.scale(-1)]
  return optax.chain(*links)
