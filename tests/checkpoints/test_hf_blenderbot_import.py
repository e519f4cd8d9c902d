"""Hugging Face Blenderbot -> Prost: transformers writes tiny random models, our forward
pass on the imported weights gives its logits, and what cannot be imported is refused
naming the tensor or field. No network: every model is built from a config."""

import copy
import dataclasses
import json
import shutil

import jax.numpy as jnp
from flax import traverse_util
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402  (transformers' dependency)

from prosocial_jax.checkpoints import importers  # noqa: E402
from prosocial_jax.checkpoints.importers import hf_blenderbot  # noqa: E402
from prosocial_jax.checkpoints.importers.base import CheckpointImportError  # noqa: E402
from prosocial_jax.inference.model import EncoderDecoderModel  # noqa: E402
from prosocial_jax.models.prost import prost_config  # noqa: E402
from prosocial_jax.models.t5 import t5_1_1_config  # noqa: E402

VOCAB = 50
# Asymmetric depths like blenderbot-3B (2 / 24), tiny widths.
TINY = dict(vocab_size=VOCAB, d_model=16, encoder_layers=2, decoder_layers=3,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=16, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, init_std=0.3)


def hf_model(seed, **overrides):
  """A random tiny BlenderbotForConditionalGeneration, with non-trivial layer norms and
  biases (zero biases and unit norms would hide a misplaced tensor)."""
  torch.manual_seed(seed)
  config = transformers.BlenderbotConfig(**{**TINY, **overrides})
  model = transformers.BlenderbotForConditionalGeneration(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("bias") or "layer_norm" in name:
        p.add_(0.2 * torch.randn_like(p))
  return model


def state_dict(model):
  """Every tensor of the state dict as its own contiguous copy (tied copies included)."""
  return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def write_bin(model, folder):
  folder.mkdir()
  model.config.to_json_file(str(folder / "config.json"))
  torch.save(state_dict(model), folder / "pytorch_model.bin")
  return folder


def write_safetensors(folder, config_source, tensors, config_edit=None):
  """`tensors` as model.safetensors beside `config_source`'s config.json (edited)."""
  folder.mkdir()
  config = json.loads((config_source / "config.json").read_text())
  (folder / "config.json").write_text(json.dumps({**config, **(config_edit or {})}))
  save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
  return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  """scaled: save_pretrained (safetensors), erf GELU, scale_embedding, tokenizer files;
  unscaled: torch.save'd pytorch_model.bin with its tied copies, tanh GELU;
  sharded: scaled as several safetensors shards with an index; bf16: scaled in bfloat16."""
  root = tmp_path_factory.mktemp("blenderbot")
  scaled = hf_model(0, scale_embedding=True, activation_function="gelu")
  unscaled = hf_model(1, scale_embedding=False, activation_function="gelu_new")
  scaled.save_pretrained(root / "scaled")
  (root / "scaled" / "vocab.json").write_text(json.dumps({"__null__": 0, "__start__": 1}))
  (root / "scaled" / "merges.txt").write_text("#version: 0.2\n")
  write_bin(unscaled, root / "unscaled")
  scaled.save_pretrained(root / "sharded", max_shard_size="20KB")
  copy.deepcopy(scaled).to(torch.bfloat16).save_pretrained(root / "bf16")  # .to() is in place
  return {"root": root, "scaled": (root / "scaled", scaled),
          "unscaled": (root / "unscaled", unscaled), "sharded": root / "sharded",
          "bf16": root / "bf16"}


def nest(flat):
  return traverse_util.unflatten_dict(flat, sep="/")


def imported_tensors(imported):
  seen = {}
  for name, value in imported.tensors():
    assert name not in seen, name  # each exactly once
    assert value.dtype == np.float32, name
    seen[name] = value
  return seen


def batch():
  """Encoder ids with padding; decoder inputs from the decoder start (1, as Blenderbot) with
  padding after each target; targets are the inputs shifted left (their zeros mark padding)."""
  enc = np.array([[5, 9, 12, 7, 33, 2, 0, 0, 0], [17, 4, 41, 2, 0, 0, 0, 0, 0]], np.int32)
  tgt = np.array([[8, 3, 25, 19, 2, 0, 0], [44, 6, 2, 0, 0, 0, 0]], np.int32)
  dec = np.concatenate([np.ones((2, 1), np.int32), tgt[:, :-1]], axis=1) * (tgt != 0)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec, "decoder_target_tokens": tgt}


def hf_logits(model, b):
  with torch.no_grad():
    return model(input_ids=torch.tensor(b["encoder_input_tokens"]).long(),
                 attention_mask=torch.tensor(b["encoder_input_tokens"] != 0).long(),
                 decoder_input_ids=torch.tensor(b["decoder_input_tokens"]).long(),
                 decoder_attention_mask=torch.tensor(b["decoder_target_tokens"] != 0).long(),
                 ).logits.numpy()


def assert_logits_match(imported, model):
  b = batch()
  ours = EncoderDecoderModel(imported.config).logits(
      nest({k: jnp.asarray(v) for k, v in imported_tensors(imported).items()}),
      {k: jnp.asarray(v) for k, v in b.items()})
  theirs = hf_logits(model, b)
  valid = b["decoder_target_tokens"] != 0  # padded positions are masked out of every loss
  assert ours.shape == theirs.shape == (2, 7, VOCAB)
  assert np.abs(theirs[valid]).max() > 1.0  # a real comparison, not of near-zero logits
  np.testing.assert_allclose(np.asarray(ours)[valid], theirs[valid], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("which", ["scaled", "unscaled"])
def test_logits_equal_transformers(checkpoints, which):
  folder, model = checkpoints[which]
  assert hf_blenderbot.detect(folder)
  imported = hf_blenderbot.read(str(folder))
  assert imported.format == "hf_blenderbot"
  assert imported.config.scale_embedding == (which == "scaled")
  assert imported.config.activation == ("gelu_exact" if which == "scaled" else "gelu")
  assert (imported.config.num_encoder_layers, imported.config.num_decoder_layers) == (2, 3)
  assert_logits_match(imported, model)


def test_report_tied_copies_and_vocabulary(checkpoints):
  scaled, unscaled = checkpoints["scaled"][0], checkpoints["unscaled"][0]
  # save_pretrained drops the tied copies; torch.save keeps them, and they are checked.
  saved = hf_blenderbot.read(scaled)
  assert set(saved.report.ignored) == {"final_logits_bias"}
  assert saved.vocabulary == {"kind": "hf_tokenizer", "source": str(scaled)}
  kept = hf_blenderbot.read(unscaled)
  assert set(kept.report.ignored) == {"final_logits_bias", *hf_blenderbot.TIED}
  assert kept.vocabulary is None
  params = imported_tensors(kept)
  assert len(kept.report.loaded) == len(params)
  assert kept.report.converted["decoder/layers_2/fc1/kernel"] == "transpose"
  assert "encoder/layer_norm/scale" not in kept.report.converted
  model = checkpoints["unscaled"][1]
  np.testing.assert_array_equal(params["decoder/layers_1/encoder_attn/v_proj/kernel"],
                                model.model.decoder.layers[1].encoder_attn.v_proj.weight
                                .detach().numpy().T)


def test_sharded_and_bfloat16(checkpoints):
  whole = imported_tensors(hf_blenderbot.read(checkpoints["scaled"][0]))
  assert (checkpoints["sharded"] / "model.safetensors.index.json").exists()
  sharded = imported_tensors(hf_blenderbot.read(checkpoints["sharded"]))
  assert sharded.keys() == whole.keys()
  for name in whole:
    np.testing.assert_array_equal(sharded[name], whole[name], err_msg=name)
  imported = hf_blenderbot.read(checkpoints["bf16"])
  assert imported.report.converted["shared/embedding"] == "BF16 -> float32"
  halves = imported_tensors(imported)
  rounded = lambda x: np.asarray(jnp.asarray(x, jnp.bfloat16).astype(jnp.float32))
  for name in whole:  # exactly the bf16 values, widened
    np.testing.assert_array_equal(halves[name], rounded(whole[name]), err_msg=name)


def test_config_from_hf_blenderbot_3b():
  """A config.json like facebook/blenderbot-3B's (legacy keys included) is our 2_7b."""
  hf = dict(model_type="blenderbot", architectures=["BlenderbotForConditionalGeneration"],
            vocab_size=8008, d_model=2560, encoder_layers=2, decoder_layers=24,
            encoder_attention_heads=32, decoder_attention_heads=32, encoder_ffn_dim=10240,
            decoder_ffn_dim=10240, max_position_embeddings=128, activation_function="gelu",
            scale_embedding=True, normalize_before=True, add_final_layer_norm=True,
            normalize_embedding=False, layernorm_variant="prelayernorm",
            do_blenderbot_90_layernorm=True, static_position_embeddings=False,
            dropout=0.1, attention_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
  config = hf_blenderbot.config_from_hf(hf)
  assert config == prost_config("2_7b", dropout_rate=0.1, attention_dropout_rate=0.0)
  # Omitted fields take transformers' defaults: scale_embedding is then False.
  assert not hf_blenderbot.config_from_hf({"model_type": "blenderbot"}).scale_embedding


def test_defaults_are_transformers_defaults():
  defaults = transformers.BlenderbotConfig().to_dict()
  assert {k: defaults[k] for k in hf_blenderbot.HF_DEFAULTS} == hf_blenderbot.HF_DEFAULTS


def test_auto_format_is_hf_blenderbot(checkpoints):
  """No other importer claims a Blenderbot folder."""
  for name in ("scaled", "unscaled", "sharded"):
    assert importers.detect_format(str(checkpoints["root"] / name)) == "hf_blenderbot", name
  assert importers.import_checkpoint(str(checkpoints["root"] / "scaled")).format == "hf_blenderbot"


def test_detect(checkpoints, tmp_path):
  root = checkpoints["root"]
  for name in ("scaled", "unscaled", "sharded", "bf16"):
    assert hf_blenderbot.detect(root / name), name
  assert not hf_blenderbot.detect(tmp_path)  # empty
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "blenderbot"}))
  assert not hf_blenderbot.detect(tmp_path)  # no weights
  (tmp_path / "model.safetensors").write_bytes(b"")
  assert hf_blenderbot.detect(tmp_path)
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
  assert not hf_blenderbot.detect(tmp_path)
  (tmp_path / "config.json").write_text("{not json")
  assert not hf_blenderbot.detect(tmp_path)


# --- Refusals -------------------------------------------------------------------------------

def _refusal(folder, config=None) -> str:
  with pytest.raises(CheckpointImportError) as error:
    hf_blenderbot.read(folder, config=config)
  return str(error.value)


@pytest.fixture(scope="module")
def base(checkpoints):
  """The scaled model's config folder and state dict (tied copies dropped, as HF saves)."""
  folder, model = checkpoints["scaled"]
  tensors = state_dict(model)
  for name in hf_blenderbot.TIED:
    del tensors[name]
  return folder, tensors


def test_unmapped_tensor_is_refused(base, tmp_path):
  folder, tensors = base
  extra = {**tensors, "model.encoder.layernorm_embedding.weight": torch.ones(16)}
  message = _refusal(write_safetensors(tmp_path / "x", folder, extra))
  assert "model.encoder.layernorm_embedding.weight in " in message
  assert "model.safetensors" in message and "no place for" in message


def test_missing_tensor_is_refused(base, tmp_path):
  folder, tensors = base
  fewer = {k: v for k, v in tensors.items() if k != "model.decoder.layers.2.fc2.bias"}
  message = _refusal(write_safetensors(tmp_path / "x", folder, fewer))
  assert "model.decoder.layers.2.fc2.bias (our decoder/layers_2/fc2/bias [16])" in message


def test_wrong_shape_is_refused(base, tmp_path):
  folder, tensors = base
  wrong = {**tensors, "model.encoder.layers.1.fc1.weight": torch.zeros(16, 32)}  # not [32, 16]
  message = _refusal(write_safetensors(tmp_path / "x", folder, wrong))
  assert "model.encoder.layers.1.fc1.weight in " in message
  assert "shape [16, 32]; the config gives [32, 16]" in message


def test_untied_lm_head_is_refused(base, tmp_path):
  folder, tensors = base
  untied = {**tensors, "lm_head.weight": tensors["model.shared.weight"] + 1.0}
  message = _refusal(write_safetensors(tmp_path / "x", folder, untied))
  assert "lm_head.weight in " in message and "differs from model.shared.weight" in message
  tied = {**tensors, "lm_head.weight": tensors["model.shared.weight"].clone()}
  assert "lm_head.weight" in hf_blenderbot.read(write_safetensors(tmp_path / "y", folder, tied)
                                                ).report.ignored


def test_shared_embedding_may_come_from_a_tied_copy(base, tmp_path):
  folder, tensors = base
  renamed = {k: v for k, v in tensors.items() if k != "model.shared.weight"}
  renamed["model.decoder.embed_tokens.weight"] = tensors["model.shared.weight"]
  imported = hf_blenderbot.read(write_safetensors(tmp_path / "x", folder, renamed))
  assert "from model.decoder.embed_tokens.weight" in imported.report.converted["shared/embedding"]
  np.testing.assert_array_equal(imported_tensors(imported)["shared/embedding"],
                                tensors["model.shared.weight"].numpy())


def test_nonzero_final_logits_bias_is_refused(base, tmp_path):
  folder, tensors = base
  biased = {**tensors, "final_logits_bias": torch.full((1, VOCAB), 0.5)}
  message = _refusal(write_safetensors(tmp_path / "x", folder, biased))
  assert "final_logits_bias in " in message and "not all zeros" in message


def test_config_mismatch_is_refused(checkpoints):
  folder, _ = checkpoints["scaled"]
  found = hf_blenderbot.read(folder).config
  message = _refusal(folder, config=dataclasses.replace(found, num_decoder_layers=2))
  assert "config field num_decoder_layers: given 2" in message and "decoder_layers" in message
  message = _refusal(folder, config=dataclasses.replace(found, scale_embedding=False,
                                                        num_decoder_layers=2))
  assert "config field scale_embedding" in message  # every difference, not the first
  assert "config field num_decoder_layers" in message
  # How a run executes the model may differ: the given config is returned.
  run = dataclasses.replace(found, dropout_rate=0.3, scan_layers=True)
  assert hf_blenderbot.read(folder, config=run).config == run
  with pytest.raises(CheckpointImportError, match="given config is a T5Config"):
    hf_blenderbot.read(folder, config=t5_1_1_config("tiny", vocab_size=VOCAB))


@pytest.mark.parametrize("edit, names", [
    ({"model_type": "blenderbot-small",
      "architectures": ["BlenderbotSmallForConditionalGeneration"]}, "blenderbot-small"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings"),
    ({"normalize_before": False}, "normalize_before"),
    ({"decoder_attention_heads": 4}, "decoder_attention_heads"),
    ({"activation_function": "quick_gelu"}, "activation_function"),
])
def test_config_json_prost_cannot_compute_is_refused(base, tmp_path, edit, names):
  folder, tensors = base
  assert names in _refusal(write_safetensors(tmp_path / "x", folder, tensors, edit))


def test_bin_needs_weights_only(base, tmp_path):
  folder, _ = base
  (tmp_path / "x").mkdir()
  shutil.copy(folder / "config.json", tmp_path / "x" / "config.json")
  torch.save({"model.shared.weight": torch.zeros(2), "code": object()},
             tmp_path / "x" / "pytorch_model.bin")
  assert "weights_only=True" in _refusal(tmp_path / "x")
