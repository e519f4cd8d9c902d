"""models/reductions.py: the leading-axis sum and the broadcast whose gradient uses it;
bf16 layers whose parameter gradients must still sum in float32."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models import layers, reductions


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


@pytest.mark.parametrize("with_bias", [False, True])
def test_scale_features_gradients_are_autodiffs_in_float32(with_bias):
  keys = jax.random.split(jax.random.key(3), 4)
  x = jax.random.normal(keys[0], (3, 5, 16))
  scale = jax.random.normal(keys[1], (16,))
  bias = jax.random.normal(keys[2], (16,)) if with_bias else None
  g = jax.random.normal(keys[3], (3, 5, 16))

  def formula(x, scale, bias):
    return x * scale + (0.0 if bias is None else bias)

  ours_y, ours = jax.vjp(reductions.scale_features, x, scale, bias)
  ref_y, ref = jax.vjp(formula, x, scale, bias)
  np.testing.assert_array_equal(ours_y, ref_y)
  for got, want in zip(ours(g), ref(g)):
    if want is None:
      assert got is None
    else:
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_scale_features_keeps_bf16_activations_and_sums_the_scale_gradient_in_float32():
  x = jax.random.normal(jax.random.key(0), (64, 32, 8)).astype(jnp.bfloat16)
  scale = jnp.full((8,), 0.5, jnp.float32)
  y, vjp = jax.vjp(reductions.scale_features, x, scale)
  dx, dscale = vjp(jnp.ones_like(y))
  assert y.dtype == dx.dtype == jnp.bfloat16 and dscale.dtype == jnp.float32
  # 2048 bf16 terms: a bf16 sum would be off by far more than this float32 one
  want = np.sum(np.asarray(x, np.float64), axis=(0, 1))
  np.testing.assert_allclose(dscale, want, rtol=1e-5, atol=1e-3)


def test_a_bf16_embedding_sums_repeated_tokens_gradients_in_float32():
  # 4096 lookups of 3 tokens: each row's gradient sums ~1365 bf16 cotangents. Gathering
  # from a bf16 copy of the table summed them in bf16 (max error 4.1 on a scale of 69).
  embed = layers.Embed(num_embeddings=16, features=8, dtype=jnp.bfloat16)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 3, (8, 512)), jnp.int32)
  params = nn.unbox(embed.init(jax.random.key(0), tokens))
  cotangent = jax.random.normal(jax.random.key(1), (8, 512, 8)).astype(jnp.bfloat16)
  out = embed.apply(params, tokens)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_array_equal(  # the rows, rounded once
      out, jnp.take(params["params"]["embedding"], tokens, axis=0).astype(jnp.bfloat16))
  grad = jax.grad(lambda p: jnp.sum(embed.apply(p, tokens).astype(jnp.float32)
                                    * cotangent.astype(jnp.float32)))(params)
  exact = np.zeros((16, 8))
  np.add.at(exact, np.asarray(tokens).ravel(),
            np.asarray(cotangent.astype(jnp.float32), np.float64).reshape(-1, 8))
  assert grad["params"]["embedding"].dtype == jnp.float32
  np.testing.assert_allclose(grad["params"]["embedding"], exact, atol=1e-4)
