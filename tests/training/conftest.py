"""A very small T5 and a fixed batch shared by the training and checkpoint tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models import t5_1_1_config
from prosocial_jax.inference.model import EncoderDecoderModel

BATCH, INPUTS, TARGETS, VOCAB = 8, 12, 6, 64


def tiny_test_config(**overrides):
  fields = dict(vocab_size=VOCAB, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                num_encoder_layers=1, num_decoder_layers=1)
  fields.update(overrides)
  return t5_1_1_config("tiny", **fields)


def dummy_batch_shapes(batch=BATCH):
  enc = jax.ShapeDtypeStruct((batch, INPUTS), jnp.int32)
  dec = jax.ShapeDtypeStruct((batch, TARGETS), jnp.int32)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec,
          "decoder_target_tokens": dec}


def fixed_batch(seed=0, batch=BATCH):
  rng = np.random.default_rng(seed)
  targets = rng.integers(2, VOCAB, (batch, TARGETS)).astype(np.int32)
  targets[:, -2:] = 0  # padding the loss must ignore
  return {
      "encoder_input_tokens": rng.integers(2, VOCAB, (batch, INPUTS)).astype(np.int32),
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": targets,
      "decoder_loss_weights": (targets > 0).astype(np.float32),
  }


@pytest.fixture(scope="session")
def tiny_model():
  return EncoderDecoderModel(tiny_test_config())
