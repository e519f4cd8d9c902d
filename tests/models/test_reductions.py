"""models/reductions.py: the leading-axis sum and the broadcast whose gradient uses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models import reductions


@pytest.mark.parametrize("rows", [1, 2, 7, 8, 37])
def test_sum_leading_is_the_sum(rows):
  x = jax.random.normal(jax.random.key(rows), (rows, 3, 50))
  np.testing.assert_allclose(jax.jit(reductions.sum_leading)(x),
                             np.sum(np.asarray(x, np.float64), 0), rtol=1e-5, atol=1e-5)
  squares = jax.jit(lambda x: reductions.sum_leading(x, lambda h: h * h + 1.0))(x)
  np.testing.assert_allclose(squares, np.sum(np.asarray(x, np.float64) ** 2 + 1, 0), rtol=1e-5)


def test_sum_leading_is_plain_sum_off_the_cpu(monkeypatch):
  monkeypatch.setattr(reductions, "_on_cpu", lambda: False)
  jaxpr = str(jax.make_jaxpr(reductions.sum_leading)(jnp.ones((8, 4))))
  assert "reduce_sum" in jaxpr and "slice" not in jaxpr
  monkeypatch.setattr(reductions, "_on_cpu", lambda: True)
  assert "reduce_sum" not in str(jax.make_jaxpr(reductions.sum_leading)(jnp.ones((8, 5))))


def test_broadcast_leading_and_its_gradient():
  x = jax.random.normal(jax.random.key(0), (1, 2, 3))
  g = jax.random.normal(jax.random.key(1), (5, 2, 3))
  y, vjp = jax.vjp(lambda x: reductions.broadcast_leading(x, 5), x)
  np.testing.assert_array_equal(y, jnp.broadcast_to(x, (5, 2, 3)))
  np.testing.assert_allclose(vjp(g)[0], jnp.sum(g, 0, keepdims=True), rtol=1e-6)
