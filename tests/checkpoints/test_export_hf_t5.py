"""Our T5 -> Hugging Face: tiny random checkpoints of ours, exported, must load in
transformers' T5ForConditionalGeneration with our logits (fp32, within 1e-4) and our
greedy tokens; HF -> ours -> HF must give back every tensor unchanged."""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from configs, never the hub
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import flax.linen as nn  # noqa: E402
from flax import traverse_util  # noqa: E402

from prosocial_jax.checkpoints.exporters import ExportError, export_checkpoint  # noqa: E402
from prosocial_jax.checkpoints.exporters import hf_t5 as exporter  # noqa: E402
from prosocial_jax.checkpoints.importers import hf_t5 as importer  # noqa: E402
from prosocial_jax.checkpoints.importers import import_checkpoint, writer  # noqa: E402
from prosocial_jax.checkpoints.importers.base import (Imported, ImportReport,  # noqa: E402
                                                      stack_layers)
from prosocial_jax.inference.model import DecodeOptions, EncoderDecoderModel  # noqa: E402
from prosocial_jax.models import t5_1_0_config, t5_1_1_config  # noqa: E402

from .t5_fixtures import SPIECE, hf_logits, random_t5, save_hf  # noqa: E402
from .t5_fixtures import batch as unpadded_batch  # noqa: E402

# Above the shipped SentencePiece model's 1024 pieces + 100 extra ids, as T5's 32128
# is above its tokenizer's 32100: the exported tokenizer fits in the embedding.
VOCAB = 1152
SIZES = dict(vocab_size=VOCAB, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
             relative_attention_num_buckets=8, relative_attention_max_distance=20)
DECODE_STEPS = 12
EOS = 1
CASES = {"v1.0": ("1.0", 2, 2), "v1.1": ("1.1", 2, 2), "v1.1_2x3": ("1.1", 2, 3)}


def our_config(version, encoder_layers, decoder_layers, **overrides):
  make = t5_1_0_config if version == "1.0" else t5_1_1_config
  return make("small", **SIZES, num_encoder_layers=encoder_layers,
              num_decoder_layers=decoder_layers, **overrides)


def batch():
  """fixtures' batch with some targets padded (Hugging Face and we must agree there too)."""
  feed = unpadded_batch(VOCAB)
  targets = feed["decoder_target_tokens"].copy()
  targets[0, 4:] = 0
  targets[2, 5:] = 0
  return {"encoder_input_tokens": feed["encoder_input_tokens"],
          "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
          "decoder_target_tokens": targets,
          "decoder_loss_weights": (targets > 0).astype(np.float32)}


def random_params(config, seed=0):
  """Our model's own init (flat, numpy), with norms moved away from 1.0 so a misplaced
  one shows."""
  feed = batch()
  params = nn.meta.unbox(EncoderDecoderModel(config).init(jax.random.key(seed), feed))
  flat = {k: np.array(v, np.float32) for k, v in
          traverse_util.flatten_dict(params, sep="/").items()}
  rng = np.random.default_rng(seed)
  for name in flat:
    if name.endswith("/scale"):
      flat[name] = rng.uniform(0.5, 1.5, flat[name].shape).astype(np.float32)
  return flat


def output_rows(config, flat):
  """The output layer [vocab, embed] of `flat` (a view: writing it changes `flat`)."""
  if config.logits_via_embedding:
    return flat["token_embedder/embedding"]
  return flat["decoder/logits_dense/kernel"].T


def stopping_at_eos(config, flat):
  """`flat` changed so that greedy decoding emits EOS mid-sequence: random weights
  almost never pick EOS, so EOS gets the output row of a token greedy decoding emits
  at step >= 2 for the first time, made 1% longer (a larger logit where that one was
  chosen, as long as it was positive). The comparison then covers the stop too."""
  feed = batch()
  tokens = np.asarray(EncoderDecoderModel(config).predict_batch(
      traverse_util.unflatten_dict(flat, sep="/"), feed,
      decode=DecodeOptions(max_decode_length=DECODE_STEPS, eos_id=EOS)))
  token = next(int(row[step]) for step in range(2, DECODE_STEPS) for row in tokens
               if row[step] not in (EOS, *row[:step]))
  flat = {name: array.copy() for name, array in flat.items()}
  rows = output_rows(config, flat)
  rows[EOS] = rows[token] * np.float32(1.01)
  return flat


def write_ours(directory, config, flat):
  """`flat` as one of our checkpoints (step 0, with the SentencePiece vocabulary); a
  config with scan_layers gets the stacked layout a scanned run saves."""
  unscanned = dataclasses.replace(config, scan_layers=False)
  imported = Imported(format="test", source="random", config=unscanned,
                      tensors=lambda: iter(flat.items()), report=ImportReport(),
                      vocabulary={"kind": "sentencepiece", "source": SPIECE, "extra_ids": 100})
  if config.scan_layers:
    imported = stack_layers(imported, config)
  writer.write_checkpoint(imported, str(directory))
  return str(directory)


def load_hf(directory):
  return transformers.T5ForConditionalGeneration.from_pretrained(str(directory)).eval()


def hf_greedy(model, feed):
  inputs = torch.tensor(feed["encoder_input_tokens"], dtype=torch.long)
  with torch.no_grad():
    out = model.generate(input_ids=inputs, attention_mask=(inputs != 0).long(),
                         do_sample=False, num_beams=1, max_new_tokens=DECODE_STEPS)
  return out[:, 1:].numpy()  # without the decoder start token


def until_eos(row):
  row = list(row)
  return row[:row.index(EOS) + 1] if EOS in row else row


def safetensors_of(directory):
  arrays = {}
  for name in sorted(os.listdir(directory)):
    if name.endswith(".safetensors"):
      arrays.update(safetensors_numpy.load_file(os.path.join(directory, name)))
  return arrays


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
  """(config, our flat params, the exported folder)."""
  version, encoder_layers, decoder_layers = CASES[request.param]
  config = our_config(version, encoder_layers, decoder_layers)
  flat = stopping_at_eos(config, random_params(config))
  root = tmp_path_factory.mktemp(request.param)
  model_dir = write_ours(root / "ours", config, flat)
  summary = export_checkpoint(model_dir, str(root / "hf"))
  assert summary["step"] == 0
  return config, flat, root / "hf"


def test_the_export_gives_our_logits_and_greedy_tokens(exported):
  config, flat, directory = exported
  model = load_hf(directory)
  feed = batch()
  params = traverse_util.unflatten_dict(flat, sep="/")
  ours = EncoderDecoderModel(config)
  theirs = hf_logits(model, feed)
  real = feed["decoder_target_tokens"] > 0
  difference = float(np.abs(np.asarray(ours.logits(params, feed)) - theirs)[real].max())
  print(f"max |logit difference| {difference:.3g}")
  assert difference < 1e-4

  our_tokens = np.asarray(ours.predict_batch(
      params, feed, decode=DecodeOptions(max_decode_length=DECODE_STEPS, eos_id=EOS)))
  their_tokens = hf_greedy(model, feed)
  for mine, hf in zip(our_tokens, their_tokens):
    assert until_eos(mine) == until_eos(hf)
  assert any(EOS in row for row in our_tokens), "no row stopped: the EOS path went untested"


def test_the_folder_is_what_transformers_reads(exported):
  config, _, directory = exported
  names = set(safetensors_of(directory))
  tied = config.logits_via_embedding
  assert ("lm_head.weight" in names) is not tied
  assert not names & {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
  # Exactly what transformers' own save_pretrained writes for such a model.
  hf_config = transformers.T5Config(**json.loads((directory / "config.json").read_text()))
  assert hf_config.scale_decoder_outputs is tied
  reference = transformers.T5ForConditionalGeneration(hf_config)
  assert names == set(reference.state_dict()) - {
      "encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
      *(("lm_head.weight",) if tied else ())}
  model = load_hf(directory)
  assert (model.lm_head.weight is model.shared.weight) is tied
  assert model.config.is_gated_act is (not tied)
  assert model.config.dense_act_fn == ("relu" if tied else "gelu_new")
  assert (model.config.num_layers, model.config.num_decoder_layers) == (
      config.num_encoder_layers, config.num_decoder_layers)
  # generate()'s KV cache needs the decoder's depth (see hf_t5.hf_config).
  assert model.config.get_text_config(decoder=True).num_hidden_layers == (
      config.num_decoder_layers)
  generation = json.loads((directory / "generation_config.json").read_text())
  assert generation == {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_hf_to_ours_to_hf_gives_back_every_tensor(tmp_path, version):
  original = random_t5(version, encoder_layers=2, decoder_layers=3, vocab=VOCAB)
  source = save_hf(original, tmp_path / "hf")
  shutil.copy(SPIECE, tmp_path / "hf" / "spiece.model")
  writer.write_checkpoint(import_checkpoint(source), str(tmp_path / "ours"))
  export_checkpoint(str(tmp_path / "ours"), str(tmp_path / "back"))

  tied_copies = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
  if version == "1.0":
    tied_copies.add("lm_head.weight")
  state = {k: v.detach().numpy() for k, v in original.state_dict().items()
           if k not in tied_copies}
  back = safetensors_of(tmp_path / "back")
  assert set(back) == set(state)
  for name, array in state.items():
    np.testing.assert_array_equal(back[name], array, err_msg=name)
  written = json.loads((tmp_path / "hf" / "config.json").read_text())
  exported_config = json.loads((tmp_path / "back" / "config.json").read_text())
  for key in ("architectures", "model_type", "vocab_size", "d_model", "d_kv", "d_ff",
              "num_heads", "num_layers", "num_decoder_layers", "relative_attention_num_buckets",
              "relative_attention_max_distance", "feed_forward_proj", "dense_act_fn",
              "is_gated_act", "tie_word_embeddings", "scale_decoder_outputs",
              "layer_norm_epsilon", "dropout_rate", "pad_token_id", "eos_token_id",
              "decoder_start_token_id", "is_encoder_decoder"):
    assert exported_config[key] == written[key], key


def test_a_scanned_checkpoint_exports_the_same_folder(tmp_path):
  config = our_config("1.1", 2, 3)
  flat = random_params(config, seed=1)
  export_checkpoint(write_ours(tmp_path / "plain", config, flat), str(tmp_path / "plain_hf"))
  scanned = dataclasses.replace(config, scan_layers=True)
  export_checkpoint(write_ours(tmp_path / "scanned", scanned, flat), str(tmp_path / "scan_hf"))
  plain, stacked = safetensors_of(tmp_path / "plain_hf"), safetensors_of(tmp_path / "scan_hf")
  assert set(plain) == set(stacked)
  for name in plain:
    np.testing.assert_array_equal(stacked[name], plain[name], err_msg=name)
  assert ((tmp_path / "plain_hf" / "config.json").read_text()
          == (tmp_path / "scan_hf" / "config.json").read_text())


@pytest.mark.parametrize("exported", ["v1.1_2x3"], indirect=True)  # one case is enough
def test_a_small_shard_size_gives_shards_that_load_with_the_same_logits(exported, tmp_path):
  config, flat, directory = exported
  model_dir = write_ours(tmp_path / "ours", config, flat)
  summary = export_checkpoint(model_dir, str(tmp_path / "hf"), max_shard_bytes=20_000)
  shards = sorted(n for n in summary["files"] if n.endswith(".safetensors"))
  assert len(shards) > 2 and "model.safetensors" not in summary["files"]
  assert shards == [f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                    for i in range(1, len(shards) + 1)]
  index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
  assert set(index["weight_map"].values()) == set(shards)
  # Readable as the folder's other files are (safetensors alone writes 0600).
  umask = os.umask(0)
  os.umask(umask)
  modes = {name: (tmp_path / "hf" / name).stat().st_mode & 0o777 for name in summary["files"]}
  assert set(modes.values()) == {0o666 & ~umask}, modes
  assert set(index["weight_map"]) == set(safetensors_of(directory))
  feed = batch()
  np.testing.assert_array_equal(hf_logits(load_hf(tmp_path / "hf"), feed),
                                hf_logits(load_hf(directory), feed))


def test_unplaceable_missing_and_misshapen_parameters_are_refused_by_name():
  config = our_config("1.1", 2, 2)
  flat = random_params(config)
  with pytest.raises(ExportError, match=r"our parameter decoder/extra/kernel has no Hugging "
                     r"Face T5 counterpart \(unmapped\)"):
    exporter.hf_tensors({**flat, "decoder/extra/kernel": np.zeros((2, 2), np.float32)}, config)
  missing = {k: v for k, v in flat.items() if k != "decoder/layers_1/mlp/wo/kernel"}
  with pytest.raises(ExportError, match=r"lacks decoder/layers_1/mlp/wo/kernel \(Hugging Face "
                     r"decoder\.block\.1\.layer\.2\.DenseReluDense\.wo\.weight\)"):
    exporter.hf_tensors(missing, config)
  wrong = {**flat, "encoder/layers_0/mlp/wi_1/kernel": np.zeros((16, 31), np.float32)}
  with pytest.raises(ExportError, match=r"encoder/layers_0/mlp/wi_1/kernel has shape \[16, 31\], "
                     r"the config makes it \[16, 32\]"):
    exporter.hf_tensors(wrong, config)
  # The tied v1.0 has no output kernel: one left in the checkpoint is not silently dropped.
  v10 = our_config("1.0", 2, 2)
  with pytest.raises(ExportError, match=r"decoder/logits_dense/kernel has no Hugging Face"):
    exporter.hf_tensors({**random_params(v10), "decoder/logits_dense/kernel":
                         flat["decoder/logits_dense/kernel"]}, v10)


@pytest.mark.parametrize("activations,message", [
    (("tanh",), r"MLP activation 'tanh' .* no Hugging Face T5 counterpart"),
    (("gelu", "linear", "linear"), r"\('gelu', 'linear', 'linear'\): Hugging Face's T5 MLP"),
    (("linear", "gelu"), r"\('linear', 'gelu'\): Hugging Face's T5 MLP"),
    (("gelu", "relu"), r"\('gelu', 'relu'\): Hugging Face's T5 MLP")])
def test_activations_transformers_cannot_compute_are_refused_by_name(activations, message):
  config = our_config("1.1", 2, 2, mlp_activations=activations)
  special = {"pad_token_id": 0, "eos_token_id": 1, "unk_token_id": 2, "decoder_start_token_id": 0}
  with pytest.raises(ExportError, match=message):
    exporter.hf_config(config, special)
  with pytest.raises(ExportError, match=message):
    exporter.hf_tensors({}, config)


@pytest.mark.parametrize("ours,act", [("relu", "relu"), ("gelu", "gelu_new"),
                                      ("gelu_exact", "gelu"), ("silu", "silu")])
@pytest.mark.parametrize("gated", [False, True])
def test_each_activation_reads_back_the_same_in_transformers_and_our_importer(ours, act, gated):
  activations = (ours, "linear") if gated else (ours,)
  config = our_config("1.1", 2, 2, mlp_activations=activations)
  special = {"pad_token_id": 0, "eos_token_id": 1, "unk_token_id": 2, "decoder_start_token_id": 0}
  record = exporter.hf_config(config, special)
  read = transformers.T5Config(**record)
  assert (read.dense_act_fn, read.is_gated_act) == (act, gated)
  from transformers.activations import ACT2FN
  assert ACT2FN[read.dense_act_fn] is not None
  assert importer._found_config(record, "config.json").mlp_activations == activations
