import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prosocial_jax.training.optimizers import adafactor, adam
from prosocial_jax.training.schedules import warmup_constant, warmup_rsqrt


def test_warmup_constant_ramps_then_holds():
  schedule = warmup_constant(learning_rate=1e-3, warmup_steps=10)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(5e-4)
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(1000)) == pytest.approx(1e-3)


def test_warmup_rsqrt_is_flat_then_decays_as_inverse_sqrt():
  schedule = warmup_rsqrt(learning_rate=0.01, warmup_steps=100)
  assert float(schedule(0)) == pytest.approx(0.01)
  assert float(schedule(99)) == pytest.approx(0.01)
  assert float(schedule(399)) == pytest.approx(0.005, rel=1e-5)


@pytest.mark.parametrize("make", [lambda: adam(learning_rate=0.1),
                                  lambda: adam(learning_rate=0.1, weight_decay=0.01,
                                               clip_grad_norm=1.0),
                                  lambda: adafactor(learning_rate=0.1)])
def test_optimizers_reduce_a_quadratic(make):
  tx = make()
  params = {"w": jnp.full((4, 3), 2.0)}
  state = tx.init(params)
  loss = lambda p: jnp.sum(p["w"] ** 2)
  start = float(loss(params))
  for _ in range(20):
    grads = {"w": 2 * params["w"]}
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert float(loss(params)) < 0.5 * start


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_keeps_its_first_moment_in_bf16_when_asked(weight_decay):
  params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)}
  grads = {"w": jnp.linspace(0.3, -0.2, 12).reshape(4, 3)}
  full, half = (adam(learning_rate=1e-2, weight_decay=weight_decay, mu_dtype=d)
                for d in (None, "bfloat16"))
  full_state, half_state = full.init(params), half.init(params)
  for _ in range(3):
    full_update, full_state = full.update(grads, full_state, params)
    half_update, half_state = half.update(grads, half_state, params)
  moments = half_state[0]
  assert moments.mu["w"].dtype == jnp.bfloat16 and moments.nu["w"].dtype == jnp.float32
  assert full_state[0].mu["w"].dtype == jnp.float32
  assert half_update["w"].dtype == jnp.float32
  # bf16 keeps ~3 significant digits of mu; the update is mu / sqrt(nu)
  np.testing.assert_allclose(half_update["w"], full_update["w"], rtol=1e-2)
  assert not np.array_equal(half_update["w"], full_update["w"])


def test_adam_refuses_an_odd_mu_dtype():
  with pytest.raises(ValueError, match="adam.mu_dtype must be 'float32' or 'bfloat16', got 'int8'"):
    adam(learning_rate=1e-2, mu_dtype="int8")
