"""T5X -> ours: tiny random Hugging Face T5s (v1.0, v1.1) written as T5X writes them
(legacy msgpack + tensorstore zarr, orbax; scanned and unscanned), imported, and our forward
pass must give transformers' logits (fp32, within 1e-4); what cannot be placed is refused
with a message naming the tensor.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from configs, never the hub
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tensorstore")

from prosocial_jax.checkpoints.importers import (CheckpointImportError, detect_format,  # noqa: E402
                                                 import_checkpoint, mesh_tf, t5_assembly, t5x)
from prosocial_jax.checkpoints.importers.base import (ImportReport,  # noqa: E402
                                                      expected_param_shapes)
from prosocial_jax.inference.model import EncoderDecoderModel  # noqa: E402

from . import t5_fixtures as fx  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["1.0", "1.1"])
def source(request):
  """(HF model, its weights under T5X names, its logits on fx.batch())."""
  model = fx.random_t5(request.param)
  return model, fx.t5x_target(model), fx.hf_logits(model, fx.batch())


def max_diff(imported, config, reference) -> float:
  logits = EncoderDecoderModel(config).logits(fx.params_of(imported), fx.batch())
  return float(np.max(np.abs(np.asarray(logits) - reference)))


def write(layout, directory, target, **kwargs):
  writer = fx.write_t5x_legacy if layout == "legacy" else fx.write_t5x_orbax
  return writer(directory, target, **kwargs)


@pytest.mark.parametrize("layout", ["legacy", "orbax"])
def test_t5x_checkpoint_gives_the_source_logits(source, layout, tmp_path):
  model, target, reference = source
  kwargs = {"inline": ["encoder/encoder_norm/scale"]} if layout == "legacy" else {}
  step_dir = write(layout, tmp_path / "model", target, **kwargs)
  for path in (step_dir, tmp_path / "model"):  # the step, or MODEL_DIR (its latest step)
    assert detect_format(str(path)) == "t5x"
  for scan_layers in (False, True):
    config = fx.our_config(model, scan_layers=scan_layers)
    imported = import_checkpoint(step_dir, config=config)
    assert imported.format == "t5x" and imported.config is config
    assert max_diff(imported, config, reference) < TOLERANCE
  # The optimizer state is reported, never read into parameters.
  report = imported.report
  assert "state/param_states/*" in report.ignored and "state/step" in report.ignored
  assert sorted(report.loaded) == sorted(expected_param_shapes(config))


def test_scanned_t5x_checkpoints_give_the_source_logits(source, tmp_path):
  model, target, reference = source
  # flaxformer / scalable_t5: `encoder/encoder/...`, layer axis 1, split-head kernels, the
  # relative bias copied into every layer; and our own scanned layout (`encoder/layers`).
  layouts = {"scalable_t5": dict(module="stack", split_heads=True, relpos_per_layer=True),
             "ours": dict(module="layers")}
  for name, layout in layouts.items():
    scanned = fx.scanned(target, **layout)
    assert scanned["encoder/" + ("encoder" if name == "scalable_t5" else "layers")
                   + "/pre_mlp_layer_norm/scale"].shape == (fx.D_MODEL, 2)
    step_dir = fx.write_t5x_legacy(tmp_path / name, scanned)
    for scan_layers in (False, True):
      config = fx.our_config(model, scan_layers=scan_layers)
      imported = import_checkpoint(step_dir, config=config)
      assert max_diff(imported, config, reference) < TOLERANCE, (name, scan_layers)
  # Ours -> ours needs no conversion: the scanned tensors are passed through as they are.
  assert not any("stacked" in why or "layer 0" in why for why in imported.report.converted.values())


def test_bfloat16_tensors_are_read_as_float32(tmp_path):
  model = fx.random_t5("1.1")
  fx.round_to_bfloat16_(model.encoder.block[0].layer[0].SelfAttention.q.weight)
  fx.round_to_bfloat16_(model.decoder.final_layer_norm.weight)
  target, reference = fx.t5x_target(model), fx.hf_logits(model, fx.batch())
  names = ["encoder/layers_0/attention/query/kernel", "decoder/decoder_norm/scale"]
  config = fx.our_config(model)
  # T5X's save_dtype=bfloat16 (version 3: tensorstore's bfloat16; version 2: uint16 bits).
  for version in (3, 2):
    step_dir = fx.write_t5x_legacy(tmp_path / f"v{version}", target, bfloat16=names,
                                   version=version)
    imported = import_checkpoint(step_dir, config=config)
    assert "bfloat16" in imported.report.converted[names[0]]
    assert max_diff(imported, config, reference) < TOLERANCE


def test_t5x_needs_our_config_and_suggests_its_gin_file(tmp_path):
  model = fx.random_t5("1.0")
  step_dir = fx.write_t5x_legacy(tmp_path, fx.t5x_target(model))
  with pytest.raises(CheckpointImportError, match=r"carry no model config.*--gin_file"):
    import_checkpoint(step_dir)
  # A T5 size of our tables is named (shapes alone: nothing read).
  shapes = {name: tuple(array.shape) for name, array in fx.t5x_target(model).items()}
  assert t5_assembly.suggest_gin_file(shapes) is None  # the tiny test model is no published size
  big = dict(shapes, **{"token_embedder/embedding": (32128, 512),
                        "encoder/relpos_bias/rel_embedding": (8, 32),
                        "encoder/layers_0/attention/query/kernel": (512, 512),
                        "encoder/layers_0/mlp/wi/kernel": (512, 2048)})
  big.update({f"encoder/layers_{i}/x": () for i in range(6)})
  big.update({f"decoder/layers_{i}/x": () for i in range(6)})
  assert t5_assembly.suggest_gin_file(big) == "gin/models/t5_1_0/small.gin"


def _corrupt(tmp_path, target, config, expected):
  step_dir = fx.write_t5x_legacy(tmp_path, target)
  with pytest.raises(CheckpointImportError, match=expected):
    import_checkpoint(step_dir, format="t5x", config=config)


def test_unmapped_missing_and_misshaped_tensors_are_refused(tmp_path):
  model = fx.random_t5("1.1")
  target, config = fx.t5x_target(model), fx.our_config(model)
  extra = dict(target, **{"encoder/layers_0/attention/extra/kernel": np.zeros((2, 2), np.float32)})
  _corrupt(tmp_path / "a", extra, config,
           r"target/encoder/layers_0/attention/extra/kernel has no place in our model")
  missing = {k: v for k, v in target.items() if k != "decoder/layers_2/mlp/wo/kernel"}
  _corrupt(tmp_path / "b", missing, config, r"no tensor for decoder/layers_2/mlp/wo/kernel")
  wrong = dict(target, **{"encoder/layers_1/mlp/wi_0/kernel": np.zeros((16, 40), np.float32)})
  _corrupt(tmp_path / "c", wrong, config,
           r"target/encoder/layers_1/mlp/wi_0/kernel has shape \(16, 40\).*needs \(16, 32\)")
  # A v1.1 checkpoint against a v1.0 config: the output layer and gated MLP have no place.
  v1_0 = fx.our_config(fx.random_t5("1.0"))
  _corrupt(tmp_path / "d", target, v1_0, r"(logits_dense/kernel|wi_0/kernel) has no place")
  # Too few layers for the config.
  fewer = {k: v for k, v in target.items() if not k.startswith("decoder/layers_2/")}
  _corrupt(tmp_path / "e", fewer, config, r"no tensor for decoder/layers_2/")
  # A scanned stack with the wrong number of layers.
  scanned = fx.scanned(fewer, module="layers")
  _corrupt(tmp_path / "f", scanned, config,
           r"scanned tensor target/decoder/layers/.* needs 3 decoder layers")


def test_a_different_relative_bias_per_layer_is_refused(tmp_path):
  model = fx.random_t5("1.1")
  target, config = fx.t5x_target(model), fx.our_config(model)
  scanned = fx.scanned(target, relpos_per_layer=True)
  scanned["encoder/encoder/relpos_bias/rel_embedding"][:, 1] += 1.0
  _corrupt(tmp_path, scanned, config,
           r"target/encoder/encoder/relpos_bias/rel_embedding holds a different "
           r"relative-position bias in each encoder layer")


def test_assemble_reads_each_source_tensor_once_and_only_when_iterated():
  reads = {}

  def source(name, array):
    def read():
      reads[name] = reads.get(name, 0) + 1
      return array
    return t5_assembly.SourceTensor(name, array.shape, "float32", read)

  model = fx.random_t5("1.0")
  target = fx.scanned(fx.t5x_target(model), module="stack", split_heads=True)
  sources = {name: source(name, array) for name, array in target.items()}
  for scan_layers in (False, True):
    reads.clear()
    imported = t5_assembly.assemble("t5x", "memory", fx.our_config(model, scan_layers=scan_layers),
                            sources, ImportReport())
    assert reads == {}  # names and shapes come from metadata alone
    for _ in imported.tensors():
      assert len(reads) <= len(sources)
    assert reads == {name: 1 for name in sources}


def test_detection_keeps_formats_apart(tmp_path):
  model = fx.random_t5("1.0")
  target = fx.t5x_target(model)
  legacy = fx.write_t5x_legacy(tmp_path / "legacy", target)
  # T5X keeps its input pipeline's TF checkpoint next to the msgpack: still T5X.
  open(os.path.join(legacy, "train_ds-000-of-001.index"), "wb").close()
  orbax = fx.write_t5x_orbax(tmp_path / "orbax", target)
  tf_prefix = fx.write_mesh_tf(tmp_path / "mtf", fx.mesh_tf_variables(model))
  model.save_pretrained(tmp_path / "hf")
  for path, t5x_says, mesh_tf_says in [
      (legacy, True, False), (os.path.join(legacy, "checkpoint"), True, False),
      (orbax, True, False), (os.path.join(orbax, "state"), True, False),
      (tmp_path / "mtf", False, True), (tf_prefix, False, True),
      (tmp_path / "hf", False, False), (tmp_path / "nothing", False, False)]:
    assert t5x.detect(path) == t5x_says, path
    assert mesh_tf.detect(path) == mesh_tf_says, path
  assert detect_format(str(tmp_path / "hf")) == "hf_t5"


def test_our_own_checkpoints_are_not_taken_for_t5x(tmp_path):
  from prosocial_jax.checkpoints.manager import Checkpointer
  checkpointer = Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(0, {"params": {"w": np.ones(2, np.float32)}, "step": np.int32(0)},
                    {"model_config": {}})
  checkpointer.close()
  for path in (tmp_path, tmp_path / "checkpoint_0", tmp_path / "checkpoint_0" / "state"):
    assert not t5x.detect(path) and not mesh_tf.detect(path), path


def test_tensorstore_specs_are_resolved_against_the_checkpoint_folder():
  spec = {"driver": "zarr", "dtype": "float32", "metadata": {"shape": [2], "chunks": [2]},
          "kvstore": {"driver": "file", "path": "target.encoder.x"}}
  local = t5x._absolute_spec(spec, "/ckpt/checkpoint_5")  # pylint: disable=protected-access
  assert local["kvstore"] == {"driver": "file", "path": "/ckpt/checkpoint_5/target.encoder.x"}
  # Written on GCS (a dummy bucket in the spec) and read from another bucket.
  gcs = dict(spec, kvstore={"driver": "gcs", "bucket": "t5x-dummy-bucket",
                            "path": "target.encoder.x"})
  remote = t5x._absolute_spec(gcs, "gs://bucket/run/checkpoint_5")  # pylint: disable=protected-access
  assert remote["kvstore"] == {"driver": "gcs", "bucket": "bucket",
                               "path": "run/checkpoint_5/target.encoder.x"}
  # tensorstore < 0.1.14 kept the path at the top of the spec.
  old = {"driver": "zarr", "kvstore": {"driver": "file"}, "path": "target.encoder.x"}
  assert t5x._absolute_spec(old, "/c")["kvstore"]["path"] == "/c/target.encoder.x"  # pylint: disable=protected-access
