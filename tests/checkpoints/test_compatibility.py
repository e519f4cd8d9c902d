"""A checkpoint of another model, config or vocabulary is refused, naming what differs."""

import jax
import optax
import pytest
import seqio

from prosocial_jax.checkpoints.compatibility import (CheckpointMismatchError, check_compatible,
                                                     param_shapes, vocabulary_record)
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.models import attention
from prosocial_jax.models.registry import config_to_dict
from prosocial_jax.partitioning import MeshShape, create_mesh
from prosocial_jax.training.train_state import state_shardings

from ..training.conftest import dummy_batch_shapes, tiny_test_config

SAMPLE_MODEL = "tasks/vocab/prosocial_sample.model"


def _meta(config, vocabulary=None):
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  abstract, _ = state_shardings(EncoderDecoderModel(config), optax.adam(1e-3),
                                dummy_batch_shapes(), mesh)
  return {"model_config": config_to_dict(config), "param_shapes": param_shapes(abstract.params),
          "vocabulary": vocabulary or {"kind": "byte", "vocab_size": 259, "extra_ids": 0}}


def _refusal(saved, current) -> str:
  with pytest.raises(CheckpointMismatchError) as error:
    check_compatible(saved, current, model_dir="/runs/x", step=300)
  return str(error.value)


def test_another_model_shape_is_refused_with_a_readable_message():
  message = _refusal(_meta(tiny_test_config()), _meta(tiny_test_config(emb_dim=32)))
  assert "/runs/x holds a checkpoint (step 300) of another model" in message
  assert "decoder/decoder_norm/scale: checkpoint [16], this run [32]" in message
  assert "model_config.emb_dim: checkpoint has 16, this run has 32" in message
  assert "INITIAL_CHECKPOINT_PATH" in message


@pytest.mark.parametrize("field, value, line", [
    ("mlp_activations", ("relu", "linear"),
     "model_config.mlp_activations: checkpoint has ['gelu', 'linear'], this run has "
     "['relu', 'linear']"),
    ("dtype", "bfloat16", "model_config.dtype: checkpoint has 'float32', this run has 'bfloat16'"),
])
def test_another_model_with_the_same_shapes_is_refused(field, value, line):
  saved, current = _meta(tiny_test_config()), _meta(tiny_test_config(**{field: value}))
  assert saved["param_shapes"] == current["param_shapes"]
  assert line in _refusal(saved, current)


def test_run_settings_may_change_and_are_logged(caplog):
  check_compatible(_meta(tiny_test_config()),
                   _meta(tiny_test_config(dropout_rate=0.1, remat_policy="full",
                                          matmul="f32_fast", one_hot_embedding=True)),
                   model_dir="/runs/x", step=1)
  assert "dropout_rate" in caplog.text and "remat_policy" in caplog.text
  assert "matmul" in caplog.text and "one_hot_embedding" in caplog.text


def test_the_attention_kernel_is_a_run_setting(caplog, monkeypatch):
  monkeypatch.setattr(attention, "FUSED_IMPLEMENTATION", "xla")  # cuDNN's reference on a CPU
  bf16 = dict(dtype="bfloat16")
  check_compatible(_meta(tiny_test_config(**bf16)),
                   _meta(tiny_test_config(attention_kernel="cudnn", **bf16)),
                   model_dir="/runs/x", step=1)
  assert "attention_kernel" in caplog.text


def test_vocabularies_are_identified_by_kind_file_and_extra_ids():
  sentencepiece = vocabulary_record(seqio.SentencePieceVocabulary(SAMPLE_MODEL))
  assert sentencepiece["kind"] == "sentencepiece" and len(sentencepiece["sha256"]) == 64
  byte = vocabulary_record(seqio.ByteVocabulary())
  assert byte == {"kind": "byte", "vocab_size": 259, "extra_ids": 0}
  config = tiny_test_config()
  message = _refusal(_meta(config, sentencepiece), _meta(config, byte))
  assert "vocabulary: checkpoint was trained with tasks/vocab/prosocial_sample.model (sha256 " \
         in message and "this run uses the byte vocabulary" in message
  with_extra = vocabulary_record(seqio.ByteVocabulary(extra_ids=100))
  assert "vocabulary extra_ids: checkpoint 0, this run 100" in _refusal(
      _meta(config, byte), _meta(config, with_extra))
  other_file = dict(sentencepiece, sha256="b" * 64, source="other.model")
  assert "this run uses other.model (sha256 bbbbbbbbbbbb…)" in _refusal(
      _meta(config, sentencepiece), _meta(config, other_file))
