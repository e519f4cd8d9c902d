"""The model contract: loss_fn, score_batch and predict_batch agree with the pieces they use."""

import jax
import numpy as np
import pytest

from prosocial_jax.inference.beam_search import beam_search
from prosocial_jax.inference.decoding import greedy_decode, sample_decode
from prosocial_jax.inference.model import DecodeOptions, EncoderDecoderModel
from prosocial_jax.models import prost_config

from ..training.conftest import dummy_batch_shapes, fixed_batch, tiny_test_config


@pytest.fixture(scope="module")
def model_and_params():
  model = EncoderDecoderModel(tiny_test_config())
  params = jax.jit(model.init)(jax.random.key(0), dummy_batch_shapes())
  return model, jax.tree.map(np.asarray, params)


def _log_probs(model, params, batch):
  logits = model.module.apply({"params": params}, batch["encoder_input_tokens"],
                              batch["decoder_input_tokens"], batch["decoder_target_tokens"],
                              enable_dropout=False)
  return np.asarray(jax.nn.log_softmax(logits))


def test_score_batch_sums_log_likelihood_over_real_tokens(model_and_params):
  model, params = model_and_params
  batch = fixed_batch()
  log_likelihood, tokens = jax.jit(model.score_batch)(params, batch)
  np.testing.assert_array_equal(tokens, np.full(8, 4.0))
  log_probs = _log_probs(model, params, batch)
  expected = [sum(log_probs[row, t, batch["decoder_target_tokens"][row, t]] for t in range(4))
              for row in range(8)]  # the two padded positions are excluded
  np.testing.assert_allclose(log_likelihood, expected, rtol=1e-5)


def test_loss_is_the_mean_negative_log_likelihood_per_token(model_and_params):
  model, params = model_and_params
  batch = fixed_batch()
  loss, aux = jax.jit(model.loss_fn)(params, batch, None)  # no dropout key: deterministic
  log_likelihood, tokens = model.score_batch(params, batch)
  assert float(aux["num_tokens"]) == 32.0 and float(aux["z_loss"]) == 0.0
  assert float(loss) == pytest.approx(-float(np.sum(log_likelihood)) / 32.0, rel=1e-5)
  argmax = _log_probs(model, params, batch).argmax(-1)
  correct = ((argmax == batch["decoder_target_tokens"]) * batch["decoder_loss_weights"]).sum()
  assert float(aux["correct"]) == correct

  smoothed = EncoderDecoderModel(model.config, label_smoothing=0.1, z_loss=1e-2)
  smoothed_loss, smoothed_aux = smoothed.loss_fn(params, batch, None)
  assert float(smoothed_loss) != pytest.approx(float(loss), rel=1e-4)
  assert float(smoothed_aux["z_loss"]) > 0.0


def test_predict_batch_decodes_as_the_decoders_do(model_and_params):
  model, params = model_and_params
  batch = fixed_batch()
  inputs, length = batch["encoder_input_tokens"], batch["decoder_target_tokens"].shape[-1]
  np.testing.assert_array_equal(
      model.predict_batch(params, batch),
      greedy_decode(model.module, params, inputs, max_decode_length=length))
  sequences, _ = beam_search(model.module, params, inputs, beam_size=3, max_decode_length=5)
  np.testing.assert_array_equal(
      model.predict_batch(params, batch, decode=DecodeOptions("beam", 5, beam_size=3)),
      sequences[:, 0])
  rng = jax.random.key(7)
  np.testing.assert_array_equal(
      model.predict_batch(params, batch, decode=DecodeOptions("sample", top_k=5), rng=rng),
      sample_decode(model.module, params, inputs, rng, max_decode_length=length, top_k=5))
  with pytest.raises(ValueError, match="needs rng="):
    model.predict_batch(params, batch, decode=DecodeOptions("sample"))
  with pytest.raises(ValueError, match="method must be one of"):
    DecodeOptions("nucleus")


def test_packed_decode_weights_keep_greedy_outputs(model_and_params):
  model, params = model_and_params
  batch = fixed_batch()
  packed = model.pack_decode_weights(params, "float32")
  np.testing.assert_array_equal(model.predict_batch(params, batch, step_params=packed),
                                model.predict_batch(params, batch))
  with pytest.raises(ValueError, match="must be one of"):
    model.pack_decode_weights(params, "int4")


def test_every_family_has_the_same_contract():
  prost = EncoderDecoderModel(prost_config("tiny", vocab_size=64))
  params = jax.jit(prost.init)(jax.random.key(0), dummy_batch_shapes())
  assert prost.tied_output_embedding == "shared" and "shared" in params
  loss, _ = prost.loss_fn(jax.tree.map(np.asarray, params), fixed_batch(), None)
  assert np.isfinite(float(loss))
