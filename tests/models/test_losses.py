import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models.losses import token_log_likelihoods
from prosocial_jax.models.losses import cross_entropy_loss


def test_token_log_likelihoods_match_log_softmax():
  logits = jax.random.normal(jax.random.key(0), (2, 3, 7))
  targets = jnp.array([[1, 2, 3], [6, 0, 5]])
  expected = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)),
                                np.asarray(targets)[..., None], -1)[..., 0]
  np.testing.assert_allclose(token_log_likelihoods(logits, targets), expected, rtol=1e-6)


def test_cross_entropy_ignores_padding_and_counts_tokens():
  logits = jax.random.normal(jax.random.key(1), (1, 4, 5))
  targets = jnp.array([[1, 2, 0, 0]])
  weights = jnp.array([[1, 1, 0, 0]])
  loss_sum, z_sum, n = cross_entropy_loss(logits, targets, weights)
  ll = token_log_likelihoods(logits, targets)
  assert float(n) == 2.0
  assert float(z_sum) == 0.0
  np.testing.assert_allclose(loss_sum, -(ll[0, 0] + ll[0, 1]), rtol=1e-6)


def test_uniform_logits_give_log_vocab():
  loss_sum, _, n = cross_entropy_loss(jnp.zeros((2, 3, 11)), jnp.ones((2, 3), jnp.int32),
                                      jnp.ones((2, 3)))
  assert float(loss_sum / n) == pytest.approx(np.log(11), rel=1e-6)


def test_z_loss_adds_square_of_log_partition():
  logits = jnp.full((1, 1, 4), 2.0)  # log Z = 2 + log 4
  _, z_sum, _ = cross_entropy_loss(logits, jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1)),
                                   z_loss=1e-4)
  assert float(z_sum) == pytest.approx(1e-4 * (2 + np.log(4)) ** 2, rel=1e-5)


def test_label_smoothing_moves_loss_towards_uniform_cross_entropy():
  logits = jnp.array([[[5.0, 0.0, 0.0]]])
  target = jnp.zeros((1, 1), jnp.int32)
  plain, _, _ = cross_entropy_loss(logits, target, jnp.ones((1, 1)))
  smoothed, _, _ = cross_entropy_loss(logits, target, jnp.ones((1, 1)), label_smoothing=0.1)
  uniform = -jnp.mean(jax.nn.log_softmax(logits))
  assert float(smoothed) == pytest.approx(0.9 * float(plain) + 0.1 * float(uniform), rel=1e-6)
