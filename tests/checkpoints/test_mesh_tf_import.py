"""Mesh-TensorFlow T5 -> ours: TensorFlow writes a checkpoint with Mesh-TF's variable names
(Adafactor slots, global_step and a bfloat16 variable included) from a tiny random Hugging
Face T5 (v1.0, v1.1); our forward pass on the import must give transformers' logits (fp32,
within 1e-4), and what cannot be placed is refused with a message naming the variable.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from configs, never the hub
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tensorflow")

from prosocial_jax.checkpoints.importers import (CheckpointImportError, detect_format,  # noqa: E402
                                                 import_checkpoint, mesh_tf, t5_assembly)
from prosocial_jax.inference.model import EncoderDecoderModel  # noqa: E402

from . import t5_fixtures as fx  # noqa: E402

TOLERANCE = 1e-4
BF16 = "encoder/block_001/layer_001/DenseReluDense/wo/kernel"


@pytest.fixture(scope="module", params=["1.0", "1.1"])
def source(request, tmp_path_factory):
  """(HF model, its Mesh-TF checkpoint folder, its logits on fx.batch())."""
  model = fx.random_t5(request.param)
  fx.round_to_bfloat16_(model.encoder.block[1].layer[1].DenseReluDense.wo.weight)
  directory = tmp_path_factory.mktemp(f"mesh_tf_{request.param}")
  fx.write_mesh_tf(directory, fx.mesh_tf_variables(model), bfloat16=[BF16])
  return model, directory, fx.hf_logits(model, fx.batch())


def max_diff(imported, config, reference) -> float:
  logits = EncoderDecoderModel(config).logits(fx.params_of(imported), fx.batch())
  return float(np.max(np.abs(np.asarray(logits) - reference)))


def test_mesh_tf_checkpoint_gives_the_source_logits(source):
  model, directory, reference = source
  assert detect_format(str(directory)) == "mesh_tf"
  prefix = str(directory / "model.ckpt-1000")
  # The folder, or the checkpoint's prefix (a name, not a file: straight to the module).
  for read, scan_layers in ((lambda c: import_checkpoint(str(directory), config=c), False),
                            (lambda c: mesh_tf.read(prefix, config=c), True)):
    config = fx.our_config(model, scan_layers=scan_layers)
    imported = read(config)
    assert imported.format == "mesh_tf" and imported.source == prefix
    assert max_diff(imported, config, reference) < TOLERANCE
  report = imported.report
  slots = report.ignored["*_slot_v, *_slot_vc, *_slot_vr"]
  assert "Adafactor" in slots and "global_step" in report.ignored
  assert "bfloat16 -> float32" in report.converted["encoder/layers/mlp/wo/kernel"]


def _write(tmp_path, variables, **kwargs):
  fx.write_mesh_tf(tmp_path, variables, **kwargs)
  return str(tmp_path)


def test_rms_norm_names_and_a_bias_in_every_block(tmp_path):
  model = fx.random_t5("1.1")
  reference = fx.hf_logits(model, fx.batch())
  variables = {}
  for name, array in fx.mesh_tf_variables(model).items():
    # Later Mesh-TF releases call the norms rms_norm (t5x/checkpoint_importer.py takes both).
    variables[name.replace("layer_norm", "rms_norm").replace("final_rms_norm", "rms_norm")] = array
  for block in (1,):  # a copy of the (shared) bias in another block: equal, so one table
    variables[f"encoder/block_{block:03d}/layer_000/SelfAttention/relative_attention_bias"] = \
        variables["encoder/block_000/layer_000/SelfAttention/relative_attention_bias"]
  config = fx.our_config(model)
  imported = import_checkpoint(_write(tmp_path / "a", variables, slots=False), config=config)
  assert max_diff(imported, config, reference) < TOLERANCE
  assert "global_step" not in imported.report.ignored
  # Different tables per block cannot be one shared table.
  variables["encoder/block_001/layer_000/SelfAttention/relative_attention_bias"] = \
      variables["encoder/block_000/layer_000/SelfAttention/relative_attention_bias"] + 1.0
  with pytest.raises(CheckpointImportError,
                     match=r"encoder/block_000/layer_000/SelfAttention/relative_attention_bias "
                           r"holds a different relative-position bias"):
    import_checkpoint(_write(tmp_path / "b", variables, slots=False), config=config)


def test_unmapped_missing_and_misshaped_variables_are_refused(tmp_path):
  model = fx.random_t5("1.0")
  variables, config = fx.mesh_tf_variables(model), fx.our_config(model)
  cases = {
      "unmapped": (dict(variables, **{"encoder/embedding": variables["shared/embedding"]}),
                   r"tensor encoder/embedding \(64, 16\) is not a T5 variable we know; "
                   r"separate encoder / decoder embeddings"),
      "wrong_place": (dict(variables, **{
          "encoder/block_000/layer_001/SelfAttention/q":
              variables["encoder/block_000/layer_000/SelfAttention/q"]}),
          r"encoder/block_000/layer_001/SelfAttention/q .* is not a T5 variable we know"),
      "missing": ({k: v for k, v in variables.items()
                   if k != "decoder/block_002/layer_001/EncDecAttention/o"},
                  r"no tensor for decoder/layers_2/encoder_decoder_attention/out/kernel"),
      "shape": (dict(variables, **{"decoder/block_001/layer_002/DenseReluDense/wi/kernel":
                                   np.zeros((16, 30), np.float32)}),
                r"tensor decoder/block_001/layer_002/DenseReluDense/wi/kernel has shape "
                r"\(16, 30\), but the config needs \(16, 32\)"),
  }
  for name, (broken, expected) in cases.items():
    with pytest.raises(CheckpointImportError, match=expected):
      import_checkpoint(_write(tmp_path / name, broken), format="mesh_tf", config=config)


def test_mesh_tf_needs_our_config(source):
  _, directory, _ = source
  with pytest.raises(CheckpointImportError, match=r"no model config of ours.*--gin_file"):
    import_checkpoint(str(directory))


def test_renaming_table():
  assert mesh_tf.rename("shared/embedding") == "token_embedder/embedding"
  assert mesh_tf.rename("decoder/block_011/layer_001/EncDecAttention/k") == \
      "decoder/layers_11/encoder_decoder_attention/key/kernel"
  assert mesh_tf.rename("decoder/block_003/layer_001/rms_norm/scale") == \
      "decoder/layers_3/pre_cross_attention_layer_norm/scale"
  assert mesh_tf.rename("encoder/block_000/layer_001/layer_norm/scale") == \
      "encoder/layers_0/pre_mlp_layer_norm/scale"
  assert mesh_tf.rename("decoder/logits/kernel") == "decoder/logits_dense/kernel"
  assert mesh_tf.rename("encoder/final_layer_norm/scale") == "encoder/encoder_norm/scale"
  assert mesh_tf.rename("encoder/block_000/layer_001/EncDecAttention/q") is None
  assert mesh_tf.rename("transformer/block_000/layer_000/SelfAttention/q") is None
  # Delphi's size (T5-11B) is recognised from the shapes alone.
  shapes = {"token_embedder/embedding": (32128, 1024),
            "encoder/relpos_bias/rel_embedding": (128, 32),
            "encoder/layers_0/attention/query/kernel": (1024, 16384),
            "encoder/layers_0/mlp/wi/kernel": (1024, 65536)}
  shapes.update({f"{s}/layers_{i}/x": () for s in ("encoder", "decoder") for i in range(24)})
  assert t5_assembly.suggest_gin_file(shapes) == "gin/models/t5_1_0/11b.gin"
