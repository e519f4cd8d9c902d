"""Hugging Face T5 -> ours: transformers writes tiny random models, our forward pass on the
imported weights must give its logits (fp32, within 1e-4), and what cannot be placed is refused.
"""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from configs, never the hub
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from prosocial_jax.checkpoints.importers import (CheckpointImportError, detect_format,  # noqa: E402
                                                 hf_t5, hf_weights, import_checkpoint,
                                                 t5_names)
from prosocial_jax.checkpoints.importers.base import expected_param_shapes  # noqa: E402
from prosocial_jax.inference.model import EncoderDecoderModel  # noqa: E402
from prosocial_jax.models import t5_1_0_config, t5_1_1_config  # noqa: E402

from .t5_fixtures import D_MODEL, SPIECE, VOCAB, nested, random_t5  # noqa: E402
from .t5_fixtures import batch as unpadded_batch  # noqa: E402
from .t5_fixtures import save_hf as save  # noqa: E402


def batch(vocab):
  """fixtures' batch with some targets padded (Hugging Face and we must agree there too)."""
  feed = unpadded_batch(vocab)
  targets = feed["decoder_target_tokens"].copy()
  targets[0, 4:] = 0
  targets[2, 5:] = 0
  return {"encoder_input_tokens": feed["encoder_input_tokens"],
          "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
          "decoder_target_tokens": targets}


def max_logit_difference(model, imported):
  """max |ours - transformers| over the real (non-padding) target positions."""
  feed = batch(imported.config.vocab_size)
  with torch.no_grad():
    theirs = model(input_ids=torch.tensor(feed["encoder_input_tokens"], dtype=torch.long),
                   attention_mask=torch.tensor(feed["encoder_input_tokens"] > 0),
                   decoder_input_ids=torch.tensor(feed["decoder_input_tokens"],
                                                  dtype=torch.long)).logits.numpy()
  params = nested(dict(imported.tensors()))
  ours = np.asarray(EncoderDecoderModel(imported.config).logits(params, feed))
  real = feed["decoder_target_tokens"] > 0
  return float(np.abs(ours - theirs)[real].max())


@pytest.mark.parametrize("version,layout", [("1.0", "safetensors"), ("1.1", "safetensors"),
                                            ("1.0", "bin"), ("1.1", "sharded"),
                                            ("1.1", "sharded_bin")])
def test_imported_weights_give_the_transformers_logits(tmp_path, version, layout):
  model = random_t5(version)
  path = save(model, tmp_path, layout)
  assert detect_format(path) == "hf_t5"
  imported = import_checkpoint(path)
  cfg = imported.config
  assert (cfg.num_encoder_layers, cfg.num_decoder_layers) == (2, 3)
  assert (cfg.vocab_size, cfg.emb_dim, cfg.num_heads, cfg.head_dim, cfg.mlp_dim) == (
      VOCAB, D_MODEL, 2, 8, 32)
  assert (cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance) == (8, 20)
  if version == "1.0":
    assert cfg.mlp_activations == ("relu",) and cfg.logits_via_embedding
  else:
    assert cfg.mlp_activations == ("gelu", "linear") and not cfg.logits_via_embedding
  assert max_logit_difference(model, imported) < 1e-4
  report = imported.report
  assert sorted(report.loaded) == sorted(expected_param_shapes(cfg))
  assert report.converted["encoder/relpos_bias/rel_embedding"] == "transpose"
  assert report.converted["decoder/layers_2/mlp/wo/kernel"] == "transpose"
  if layout == "bin":  # every tied copy is in the file, checked and skipped
    assert report.ignored == {
        "encoder.embed_tokens.weight": "a copy of shared.weight (tied input embedding)",
        "decoder.embed_tokens.weight": "a copy of shared.weight (tied input embedding)",
        "lm_head.weight": "a copy of shared.weight (output layer tied to the embedding)"}
    assert "ignored lm_head.weight: a copy of shared.weight" in report.summary()


@pytest.mark.parametrize("output,transform", [
    ("tied_unscaled", "transpose (the tied embedding as an own output kernel)"),
    ("untied_scaled", "transpose, times d_model**-0.5")])
def test_the_mixed_output_layers_become_an_own_kernel_with_the_same_logits(
    tmp_path, output, transform):
  version = "1.1" if output == "tied_unscaled" else "1.0"
  model = random_t5(version, output=output)
  imported = import_checkpoint(save(model, tmp_path))
  assert not imported.config.logits_via_embedding
  assert imported.report.converted[t5_names.OUTPUT_KERNEL] == transform
  assert max_logit_difference(model, imported) < 1e-4


def test_bfloat16_and_float16_weights_arrive_as_float32(tmp_path):
  model = random_t5("1.1")
  for dtype, layout in ((torch.bfloat16, "safetensors"), (torch.float16, "safetensors"),
                        (torch.bfloat16, "bin")):
    path = save(model.to(dtype), tmp_path / f"{dtype}_{layout}", layout)
    imported = import_checkpoint(path)
    tensors = dict(imported.tensors())
    assert all(t.dtype == np.float32 for t in tensors.values())
    stored = {torch.bfloat16: "BF16", torch.float16: "F16"}[dtype]
    assert imported.report.converted["encoder/encoder_norm/scale"] == f"{stored} -> float32"
    wo = model.decoder.block[2].layer[2].DenseReluDense.wo.weight.detach().float().numpy()
    np.testing.assert_array_equal(tensors["decoder/layers_2/mlp/wo/kernel"], wo.T)


def test_remote_reads_seek_into_safetensors_and_copy_a_bin(tmp_path, monkeypatch):
  # gs:// takes these paths; here they run against local files.
  monkeypatch.setattr(hf_weights, "is_remote", lambda path: True)
  for layout in ("safetensors", "bin"):
    model = random_t5("1.0")
    imported = import_checkpoint(save(model, tmp_path / layout, layout))
    assert max_logit_difference(model, imported) < 1e-4


def test_the_vocabulary_is_the_shipped_sentencepiece_model(tmp_path):
  path = save(random_t5("1.0"), tmp_path)
  assert import_checkpoint(path).vocabulary is None
  shutil.copy(SPIECE, tmp_path / "spiece.model")
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({"extra_ids": 7}))
  assert import_checkpoint(path).vocabulary == {
      "kind": "sentencepiece", "source": str(tmp_path / "spiece.model"), "extra_ids": 7}
  # Our exports list the sentinels (none here) instead of counting them.
  (tmp_path / "tokenizer_config.json").write_text(json.dumps(
      {"additional_special_tokens": ["<extra_id_0>", "<extra_id_1>"]}))
  assert import_checkpoint(path).vocabulary["extra_ids"] == 2
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({"additional_special_tokens": []}))
  assert import_checkpoint(path).vocabulary["extra_ids"] == 0


def test_detect_needs_a_t5_config_and_weights(tmp_path):
  assert not hf_t5.detect(tmp_path)
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
  assert not hf_t5.detect(tmp_path)  # no weights
  save(random_t5("1.0"), tmp_path)
  assert hf_t5.detect(tmp_path)
  record = json.loads((tmp_path / "config.json").read_text())
  (tmp_path / "config.json").write_text(json.dumps(
      {**record, "model_type": "bart", "architectures": ["BartForConditionalGeneration"]}))
  assert not hf_t5.detect(tmp_path)
  with pytest.raises(CheckpointImportError, match="model_type 'bart'"):
    hf_t5.read(tmp_path)


def _rewrite(path, change):
  """Rewrites model.safetensors with change(dict of arrays)."""
  file = os.path.join(path, hf_weights.SAFETENSORS)
  arrays = safetensors_numpy.load_file(file)
  change(arrays)
  safetensors_numpy.save_file(arrays, file)
  return file


def test_an_unmapped_tensor_is_refused_by_name_and_file(tmp_path):
  path = save(random_t5("1.0"), tmp_path)
  file = _rewrite(path, lambda a: a.update(
      {"encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight":
       np.zeros((8, 2), np.float32)}))
  with pytest.raises(CheckpointImportError, match=(
      r"unmapped tensor encoder\.block\.1\.layer\.0\.SelfAttention\.relative_attention_bias"
      rf"\.weight in {file}")):
    import_checkpoint(path)


def test_a_missing_tensor_is_refused_by_name(tmp_path):
  path = save(random_t5("1.1"), tmp_path)
  _rewrite(path, lambda a: a.pop("decoder.block.2.layer.2.DenseReluDense.wo.weight"))
  with pytest.raises(CheckpointImportError, match=(
      r"missing tensor decoder\.block\.2\.layer\.2\.DenseReluDense\.wo\.weight \(our "
      r"decoder/layers_2/mlp/wo/kernel\)")):
    import_checkpoint(path)


def test_a_wrong_shape_is_refused_by_name_file_and_shapes(tmp_path):
  path = save(random_t5("1.1"), tmp_path)
  file = _rewrite(path, lambda a: a.update(
      {"encoder.block.0.layer.1.DenseReluDense.wi_1.weight": np.zeros((31, 16), np.float32)}))
  with pytest.raises(CheckpointImportError, match=(
      rf"shape of encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_1\.weight in {file}: "
      r"\[31, 16\], but .*config\.json makes encoder/layers_0/mlp/wi_1/kernel \[16, 32\]")):
    import_checkpoint(path)


def test_an_input_embedding_of_its_own_is_refused(tmp_path):
  path = save(random_t5("1.1"), tmp_path)
  _rewrite(path, lambda a: a.update(
      {"encoder.embed_tokens.weight": np.zeros((VOCAB, D_MODEL), np.float32)}))
  with pytest.raises(CheckpointImportError, match=r"encoder\.embed_tokens\.weight in .* "
                     "differs from shared.weight"):
    import_checkpoint(path)


def test_a_given_config_is_checked_field_by_field_and_keeps_its_run_settings(tmp_path):
  path = save(random_t5("1.1"), tmp_path)
  sizes = dict(vocab_size=VOCAB, emb_dim=D_MODEL, num_heads=2, head_dim=8, mlp_dim=32,
               num_encoder_layers=2, num_decoder_layers=3, relative_attention_num_buckets=8,
               relative_attention_max_distance=20)
  given = t5_1_1_config("tiny", **sizes, dtype="bfloat16", dropout_rate=0.1)
  assert import_checkpoint(path, config=given).config == given
  with pytest.raises(CheckpointImportError, match=r"num_decoder_layers: .*config\.json says 3, "
                     "the given config 2"):
    import_checkpoint(path, config=t5_1_1_config("tiny", **{**sizes, "num_decoder_layers": 2}))
  with pytest.raises(CheckpointImportError, match=r"mlp_activations: .*\('gelu', 'linear'\), "
                     r"the given config \('relu',\)"):
    import_checkpoint(path, config=t5_1_0_config("small", **sizes))
  with pytest.raises(CheckpointImportError, match="scan_layers"):  # the module alone
    hf_t5.read(path, config=t5_1_1_config("tiny", **sizes, scan_layers=True))


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_a_scanned_config_gets_the_layers_stacked_on_axis_1_with_the_same_logits(
    tmp_path, version):
  model = random_t5(version)
  path = save(model, tmp_path)
  plain = import_checkpoint(path)
  scanned_config = dataclasses.replace(plain.config, scan_layers=True)
  scanned = import_checkpoint(path, config=scanned_config)
  assert scanned.config is scanned_config
  tensors = dict(scanned.tensors())
  assert {n: t.shape for n, t in tensors.items()} == expected_param_shapes(scanned_config)
  per_layer = dict(plain.tensors())
  np.testing.assert_array_equal(tensors["decoder/layers/mlp/wo/kernel"][:, 2],
                                per_layer["decoder/layers_2/mlp/wo/kernel"])
  assert "decoder/layers/mlp/wo/kernel" in scanned.report.loaded
  assert scanned.report.converted["encoder/layers/attention/query/kernel"].startswith(
      "2 layers stacked on axis 1")
  assert max_logit_difference(model, scanned) < 1e-4


def test_a_config_json_we_cannot_follow_is_refused_by_field(tmp_path):
  path = save(random_t5("1.0"), tmp_path)
  record = json.loads((tmp_path / "config.json").read_text())
  for field, value in (("layer_norm_epsilon", 1e-5), ("feed_forward_proj", "gated-mish")):
    changed = {**record, field: value}
    changed.pop("dense_act_fn"), changed.pop("is_gated_act")
    (tmp_path / "config.json").write_text(json.dumps(changed))
    with pytest.raises(CheckpointImportError, match=field):
      import_checkpoint(path)


def test_a_truncated_file_is_refused_before_reading(tmp_path):
  path = save(random_t5("1.0"), tmp_path)
  file = os.path.join(path, hf_weights.SAFETENSORS)
  with open(file, "r+b") as f:
    f.truncate(os.path.getsize(file) - 10)
  with pytest.raises(CheckpointImportError, match=rf"{file} ends before its last tensor"):
    import_checkpoint(path)


def test_tensors_are_read_one_at_a_time_and_only_when_asked(tmp_path, monkeypatch):
  reads = []
  read = hf_weights._SafetensorsFile.read
  monkeypatch.setattr(hf_weights._SafetensorsFile, "read",
                      lambda self, name: reads.append(name) or read(self, name))
  imported = import_checkpoint(save(random_t5("1.1"), tmp_path))
  assert reads == []  # v1.1: nothing to compare, so nothing read yet
  tensors = imported.tensors()
  next(tensors)
  assert len(reads) == 1
  assert sum(1 for _ in tensors) + 1 == len(reads) == len(imported.report.loaded)
