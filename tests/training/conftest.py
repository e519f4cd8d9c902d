"""A very small T5 and a fixed batch shared by the training and checkpoint tests; the
uninterrupted quickstart run that the exact-resume and soak tests compare against."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models import t5_1_1_config
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.training import interruptions

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


# The trainer in process, on the shipped sample, with a small T5 (vocabulary of the sample).
TRAIN_LENGTHS = {"inputs": 64, "targets": 16}


def sample_model_config(**overrides):
  return t5_1_1_config("tiny", vocab_size=1024, emb_dim=32, num_heads=2, head_dim=16,
                       mlp_dim=64, **overrides)


def train_on_sample(model_dir, **settings):
  """`trainer.train` on the sample's Canary task; `settings` override the defaults."""
  from prosocial_jax.data.data_root import sample_data_root
  from prosocial_jax.training.optimizers import adam
  from prosocial_jax.training.trainer import train
  defaults = dict(model_dir=str(model_dir), mixture_or_task_name="prosocial_dialog_canary",
                  task_feature_lengths=TRAIN_LENGTHS, batch_size=8,
                  model_config=sample_model_config(), optimizer=adam(learning_rate=3e-3),
                  data_root=sample_data_root(), log_every=10, eval_at_end=False)
  return train(**{**defaults, **settings})


# The quickstart job of the resume tests. The sample's 106 train examples are 13.25
# batches of 8: 120 steps cross 9 epoch boundaries of the input.
RESUME_STEPS, RESUME_EVERY = 120, 10


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory):
  """JAX's persistent compilation cache for child processes: after the first run,
  each loads its compiled step instead of compiling it (~7 s each)."""
  return str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="session")
def quickstart_reference(tmp_path_factory, jax_cache_dir):
  """The uninterrupted run (every checkpoint kept): what every resumed run must equal."""
  job = interruptions.Job(tmp_path_factory.mktemp("straight"), checkpoint_every=RESUME_EVERY,
                          flags=["--gin.train.keep_checkpoints=None"], cache_dir=jax_cache_dir)
  interruptions.run(job, RESUME_STEPS)
  return job
