import jax.numpy as jnp
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
