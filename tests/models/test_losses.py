import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models.losses import token_log_likelihoods
from prosocial_jax.models.losses import correct_predictions, cross_entropy_loss


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


def _reference_loss(logits, targets, weights, z_loss, label_smoothing):
  """The formula, differentiated by JAX's own autodiff."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  log_z = jax.nn.logsumexp(logits.astype(jnp.float32), -1)
  nll = -jnp.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
  nll = (1 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, -1)
  return jnp.sum((nll + z_loss * log_z ** 2) * weights)


@pytest.mark.parametrize("z_loss, label_smoothing", [(0.0, 0.0), (1e-2, 0.0), (0.0, 0.1),
                                                     (1e-2, 0.1)])
def test_cross_entropy_gradient_equals_autodiff_of_the_formula(z_loss, label_smoothing):
  logits = 3 * jax.random.normal(jax.random.key(2), (2, 5, 13))
  targets = jax.random.randint(jax.random.key(3), (2, 5), 0, 13)
  weights = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
  ours = jax.grad(lambda x: cross_entropy_loss(x, targets, weights, z_loss, label_smoothing)[0])
  reference = jax.grad(lambda x: _reference_loss(x, targets, weights, z_loss, label_smoothing))
  np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(ours(logits)[0, 3:]).max()) == 0.0  # padding gets no gradient
  np.testing.assert_allclose(cross_entropy_loss(logits, targets, weights, z_loss, label_smoothing)[0],
                             _reference_loss(logits, targets, weights, z_loss, label_smoothing),
                             rtol=1e-6)


def test_cross_entropy_gradient_of_bf16_logits_is_bf16():
  logits = jax.random.normal(jax.random.key(4), (1, 3, 7)).astype(jnp.bfloat16)
  targets = jnp.array([[1, 2, 3]])
  grad = jax.grad(lambda x: cross_entropy_loss(x, targets, jnp.ones((1, 3)))[0])(logits)
  assert grad.dtype == jnp.bfloat16
  reference = jax.grad(lambda x: _reference_loss(x, targets, jnp.ones((1, 3)), 0.0, 0.0))(logits)
  np.testing.assert_allclose(grad.astype(np.float32), reference.astype(np.float32), atol=1e-2)


def test_the_z_loss_sum_is_differentiable_too():
  logits = jax.random.normal(jax.random.key(5), (1, 2, 6))
  targets, weights = jnp.array([[0, 4]]), jnp.ones((1, 2))
  ours = jax.grad(lambda x: cross_entropy_loss(x, targets, weights, z_loss=0.5)[1])(logits)
  reference = jax.grad(lambda x: 0.5 * jnp.sum(jax.nn.logsumexp(x, -1) ** 2))(logits)
  np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-7)


def test_correct_predictions_counts_weighted_argmax_hits():
  logits = jax.random.normal(jax.random.key(6), (4, 9, 50))
  targets = jax.random.randint(jax.random.key(7), (4, 9), 0, 50)
  targets = targets.at[:, :4].set(jnp.argmax(logits, -1)[:, :4])  # some hits
  weights = (jnp.arange(9) < 7).astype(jnp.float32)[None].repeat(4, 0)
  expected = np.sum((np.argmax(logits, -1) == targets) * weights)
  assert expected >= 16  # the four rows' first four positions, at least
  assert float(correct_predictions(logits, targets, weights)) == expected


def test_a_tie_for_the_highest_logit_counts_as_correct():
  logits = jnp.array([[[1.0, 3.0, 3.0, 0.0]]])
  assert float(correct_predictions(logits, jnp.array([[2]]), jnp.ones((1, 1)))) == 1.0
  assert float(correct_predictions(logits, jnp.array([[3]]), jnp.ones((1, 1)))) == 0.0
