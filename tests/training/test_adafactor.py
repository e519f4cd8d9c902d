"""training/adafactor.py: optax.adafactor's update and state, step after step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prosocial_jax.training import adafactor, optimizers

# Shapes of every kind the models have, and the wide leading-axis case (the output layer).
SHAPES = {"wide_output": (130, 8200), "tall_embedding": (8200, 130), "kernel": (256, 384),
          "odd_rows": (129, 8193), "small_kernel": (64, 512), "bias": (32, 6),
          "scale": (512,), "three_d": (4, 160, 200)}


def tree(key, scale=1.0):
  keys = jax.random.split(key, len(SHAPES))
  return {name: scale * jax.random.normal(k, shape)
          for k, (name, shape) in zip(keys, SHAPES.items())}


@pytest.mark.parametrize("kwargs", [{}, {"factored": False}, {"clipping_threshold": None},
                                    {"decay_rate": 0.5, "clipping_threshold": 0.1}])
def test_updates_and_state_equal_optax_adafactor_over_steps(kwargs):
  schedule = optax.linear_schedule(1e-2, 1e-3, 10)
  ours = adafactor.adafactor(schedule, **kwargs)
  reference = optax.adafactor(schedule, multiply_by_parameter_scale=True,
                              **{"clipping_threshold": 1.0, "decay_rate": 0.8, **kwargs})
  params = tree(jax.random.key(0), 0.05)
  params["scale"] = jnp.full((512,), 1e-4)  # rms below min_scale: the 1e-3 floor applies
  ours_params, ref_params = params, params
  ours_state, ref_state = ours.init(params), reference.init(params)
  assert jax.tree.structure(ours_state) == jax.tree.structure(ref_state)
  for step in range(4):
    grads = tree(jax.random.key(step + 1), 10.0 ** -step)
    ours_updates, ours_state = jax.jit(ours.update)(grads, ours_state, ours_params)
    ref_updates, ref_state = jax.jit(reference.update)(grads, ref_state, ref_params)
    for name in SHAPES:
      np.testing.assert_allclose(ours_updates[name], ref_updates[name], rtol=2e-5, atol=1e-9,
                                 err_msg=f"step {step}, {name}")
    ours_params = optax.apply_updates(ours_params, ours_updates)
    ref_params = optax.apply_updates(ref_params, ref_updates)
  for ours_leaf, ref_leaf in zip(jax.tree.leaves(ours_state), jax.tree.leaves(ref_state)):
    np.testing.assert_allclose(ours_leaf, ref_leaf, rtol=2e-5)


def test_the_trainers_adafactor_is_this_one():
  optimizer = optimizers.adafactor(learning_rate=1e-3)
  params = {"w": jnp.ones((256, 256))}
  state = optimizer.init(params)
  assert isinstance(state[0], optax.FactoredState)
  with pytest.raises(ValueError, match="needs the parameters"):
    optimizer.update(params, state)
