"""Prost -> Hugging Face Blenderbot: our checkpoints of tiny random models, exported, load in
transformers with no other argument and compute what our model computes (logits, greedy
tokens); HF -> ours -> HF gives back the same tensors; what Blenderbot cannot hold is
refused naming the field or parameter. No network: every model is built from a config."""

import dataclasses
import json
import os
import types

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file  # noqa: E402  (transformers' dependency)


from prosocial_jax.checkpoints import exporters, importers  # noqa: E402
from prosocial_jax.checkpoints.exporters import ExportError, hf_blenderbot  # noqa: E402
from prosocial_jax.checkpoints.importers import hf_blenderbot as importer  # noqa: E402
from prosocial_jax.checkpoints.importers import writer  # noqa: E402
from prosocial_jax.checkpoints.stored import open_checkpoint  # noqa: E402
from prosocial_jax.inference.model import DecodeOptions, EncoderDecoderModel  # noqa: E402
from prosocial_jax.models.prost import prost_config  # noqa: E402

VOCAB = 50
# Our SeqIO vocabulary's ids (what the tokenizer writer returns), not BlenderBot's.
SPECIAL = dict(pad_token_id=0, eos_token_id=1, unk_token_id=2, decoder_start_token_id=0)
# Asymmetric depths like blenderbot-3B (2 / 24), tiny widths.
TINY = dict(vocab_size=VOCAB, d_model=16, encoder_layers=2, decoder_layers=3,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=24, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, init_std=0.3)
KINDS = {"scaled": dict(scale_embedding=True, activation_function="gelu"),
         "unscaled": dict(scale_embedding=False, activation_function="gelu_new")}


def hf_model(seed, **overrides):
  """A random tiny Blenderbot with non-trivial layer norms and biases, a non-zero pad row
  (our decoder starts from id 0: a zero row would hide a wrong start token) and a longer
  row for our EOS (1), so that greedy decoding ends some rows early and not others."""
  torch.manual_seed(seed)
  config = transformers.BlenderbotConfig(**{**TINY, **overrides})
  model = transformers.BlenderbotForConditionalGeneration(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("bias") or "layer_norm" in name:
        p.add_(0.2 * torch.randn_like(p))
    model.model.shared.weight[0] = 0.3 * torch.randn(TINY["d_model"])
    model.model.shared.weight[1] *= 3.0
  return model


def our_checkpoint(hf_dir, model_dir, scan_layers=False):
  """`hf_dir` imported and written as our checkpoint (step 0; meta: model_config,
  param_shapes, vocabulary), scanned or not."""
  config = dataclasses.replace(importer.read(hf_dir).config, scan_layers=scan_layers)
  writer.write_checkpoint(importers.import_checkpoint(str(hf_dir), "hf_blenderbot", config),
                          str(model_dir))
  return model_dir


def export(model_dir, out, **kwargs):
  """export_checkpoint with the tokenizer writer stood in for (it has its own tests;
  these checkpoints of imported models record no vocabulary): it gives our SeqIO
  special ids, as the real one does."""
  stand_in = types.SimpleNamespace(write_tokenizer=lambda *a, **k: SPECIAL,
                                   check_vocabulary=lambda *a, **k: "sentencepiece")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(exporters, "tokenizer", stand_in)
    return exporters.export_checkpoint(str(model_dir), str(out), **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """kind -> (HF source model, its folder, our checkpoint, our export, scanned export)."""
  root = tmp_path_factory.mktemp("blenderbot_export")
  result = {}
  for seed, (kind, overrides) in enumerate(KINDS.items()):
    model = hf_model(seed, **overrides)
    model.save_pretrained(root / f"{kind}_hf")
    ours = our_checkpoint(root / f"{kind}_hf", root / f"{kind}_ours")
    scanned = our_checkpoint(root / f"{kind}_hf", root / f"{kind}_scanned", scan_layers=True)
    export(ours, root / f"{kind}_out")
    export(scanned, root / f"{kind}_scanned_out")
    result[kind] = (model, root / f"{kind}_hf", ours, root / f"{kind}_out",
                    root / f"{kind}_scanned_out")
  return result


def load(out):
  model, info = transformers.BlenderbotForConditionalGeneration.from_pretrained(
      str(out), output_loading_info=True)
  assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys",
                                       "error_msgs")), info
  return model.eval()


def batch():
  """Encoder ids ending in our EOS (1), padded with 0; decoder inputs from our decoder start
  (0) then the targets shifted right; targets' zeros mark padding."""
  enc = np.array([[5, 9, 12, 7, 33, 1, 0, 0, 0], [17, 4, 41, 1, 0, 0, 0, 0, 0],
                  [22, 1, 0, 0, 0, 0, 0, 0, 0]], np.int32)
  tgt = np.array([[8, 3, 25, 19, 1, 0, 0], [44, 6, 1, 0, 0, 0, 0],
                  [30, 31, 32, 33, 34, 35, 1]], np.int32)
  dec = np.concatenate([np.zeros((3, 1), np.int32), tgt[:, :-1]], axis=1) * (tgt != 0)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec, "decoder_target_tokens": tgt}


def ours(model_dir):
  stored = open_checkpoint(str(model_dir))
  return EncoderDecoderModel(stored.config), stored.params()


@pytest.mark.parametrize("kind", list(KINDS))
def test_logits_equal_ours(exported, kind):
  _, _, model_dir, out, _ = exported[kind]
  model, params = ours(model_dir)
  b = batch()
  mine = np.asarray(model.logits(params, b))
  with torch.no_grad():
    theirs = load(out)(
        input_ids=torch.tensor(b["encoder_input_tokens"]).long(),
        attention_mask=torch.tensor(b["encoder_input_tokens"] != 0).long(),
        decoder_input_ids=torch.tensor(b["decoder_input_tokens"]).long()).logits.numpy()
  valid = b["decoder_target_tokens"] != 0  # padded positions are masked out of every loss
  assert mine.shape == theirs.shape == (3, 7, VOCAB)
  assert np.abs(theirs[valid]).max() > 1.0  # a real comparison, not of near-zero logits
  print(f"{kind}: max |logit diff| {np.abs(mine[valid] - theirs[valid]).max():.2e}")
  np.testing.assert_allclose(mine[valid], theirs[valid], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_greedy_generate_equals_ours(exported, kind):
  """`generate()` with only the exported files' settings: our ids, no forced EOS."""
  _, _, model_dir, out, _ = exported[kind]
  model, params = ours(model_dir)
  steps = 12
  enc = batch()["encoder_input_tokens"]
  mine = np.asarray(model.predict_batch(
      params, {"encoder_input_tokens": enc},
      decode=DecodeOptions(max_decode_length=steps, eos_id=1, decoder_start_id=0)))
  hf = load(out)
  assert (hf.generation_config.decoder_start_token_id, hf.generation_config.eos_token_id,
          hf.generation_config.pad_token_id) == (0, 1, 0)
  assert hf.generation_config.forced_eos_token_id is None  # Blenderbot's default forces 2
  with torch.no_grad():
    theirs = hf.generate(input_ids=torch.tensor(enc).long(),
                         attention_mask=torch.tensor(enc != 0).long(),
                         do_sample=False, max_new_tokens=steps).numpy()
  assert (theirs[:, 0] == 0).all()  # our decoder start
  ended = 0
  for row_mine, row_theirs in zip(mine, theirs[:, 1:]):
    stop = int(np.argmax(row_mine == 1)) + 1 if (row_mine == 1).any() else steps
    ended += stop < steps or row_mine[-1] == 1
    np.testing.assert_array_equal(row_theirs[:stop], row_mine[:stop])
    assert (row_theirs[stop:] == 0).all() and (row_mine[stop:] == 0).all()
  assert 0 < ended < len(mine), ended  # both stopping at EOS and running to the end


@pytest.mark.parametrize("kind", list(KINDS))
def test_hf_ours_hf_gives_the_same_tensors_and_config(exported, kind):
  source, hf_dir, _, out, scanned_out = exported[kind]
  original = load_file(str(hf_dir / "model.safetensors"))  # save_pretrained's own file
  back = load_file(str(out / "model.safetensors"))
  assert back.keys() == original.keys()  # no tied copies, final_logits_bias included
  for name in original:
    assert back[name].dtype == np.float32, name
    np.testing.assert_array_equal(back[name], original[name], err_msg=name)
  scanned = load_file(str(scanned_out / "model.safetensors"))
  assert scanned.keys() == back.keys()
  for name in back:
    np.testing.assert_array_equal(scanned[name], back[name], err_msg=name)
  # config.json: the source's architecture, our special ids, no forced BlenderBot EOS.
  written = json.loads((out / "config.json").read_text())
  theirs = source.config.to_dict()
  for key in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim",
              "decoder_ffn_dim", "encoder_attention_heads", "decoder_attention_heads",
              "max_position_embeddings", "activation_function", "scale_embedding",
              "tie_word_embeddings"):
    assert written[key] == theirs[key], key
  assert (written["pad_token_id"], written["eos_token_id"],
          written["decoder_start_token_id"]) == (0, 1, 0)
  assert written["forced_eos_token_id"] is None
  assert json.loads((scanned_out / "config.json").read_text()) == written
  # ... and it imports as the same Prost model.
  assert importer.config_from_hf(written) == importer.read(hf_dir).config
  loaded = load(out)
  assert loaded.lm_head.weight.data_ptr() == loaded.model.shared.weight.data_ptr()  # tied
  # The summary's count says which part is BlenderBot's zero final_logits_bias.
  said = []
  summary = export(scanned_out.parent / f"{kind}_ours", scanned_out.parent / f"{kind}_again",
                   progress=said.append)
  ours = summary["parameters"] - VOCAB
  assert (f"({summary['parameters']:,} parameters: the model's {ours:,} and {VOCAB:,} zeros "
          "the Hugging Face class has besides)") in said[-1]


def test_2_7b_config_is_blenderbot_3b():
  written = hf_blenderbot.hf_config(prost_config("2_7b"), SPECIAL)
  config = transformers.BlenderbotConfig(**written)
  assert (config.d_model, config.encoder_layers, config.decoder_layers, config.vocab_size,
          config.encoder_attention_heads, config.encoder_ffn_dim,
          config.max_position_embeddings) == (2560, 2, 24, 8008, 32, 10240, 128)
  assert config.scale_embedding and config.activation_function == "gelu"
  assert importer.config_from_hf(written) == prost_config("2_7b")
  generation = transformers.GenerationConfig(**hf_blenderbot.generation_config(
      prost_config("2_7b"), SPECIAL))
  assert (generation.decoder_start_token_id, generation.eos_token_id,
          generation.forced_eos_token_id,
          generation.encoder_no_repeat_ngram_size) == (0, 1, None, 0)


# --- Refusals -------------------------------------------------------------------------------

def tiny(**overrides):
  return prost_config("tiny", vocab_size=VOCAB, **overrides)


@pytest.mark.parametrize("overrides, field", [
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon=1e-06"),
    (dict(head_dim=8), "head_dim=8"),
    (dict(activation="tanh"), "activation='tanh'"),
])
def test_configs_blenderbot_cannot_express_are_refused(overrides, field):
  with pytest.raises(ExportError, match=field):
    hf_blenderbot.hf_config(tiny(**overrides), SPECIAL)


def test_run_fields_do_not_change_the_config():
  plain = hf_blenderbot.hf_config(tiny(), SPECIAL)
  assert hf_blenderbot.hf_config(tiny(scan_layers=True, dtype="bfloat16", remat_policy="full",
                                      attention_kernel="cudnn", one_hot_embedding=True),
                                 SPECIAL) == plain


def test_unmapped_missing_and_misshapen_parameters_are_refused():
  config = tiny()
  flat = {path: np.zeros(shape, np.float32)
          for path, shape in hf_blenderbot.expected_shapes(config).items()}
  assert len(dict(hf_blenderbot.hf_tensors(flat, config))) == len(flat) + 1
  extra = {**flat, "encoder/layernorm_embedding/scale": np.ones(64, np.float32)}
  with pytest.raises(ExportError, match="encoder/layernorm_embedding/scale"):
    list(hf_blenderbot.hf_tensors(extra, config))
  missing = dict(flat)
  del missing["decoder/layers_2/fc2/bias"]
  with pytest.raises(ExportError, match="decoder/layers_2/fc2/bias"):
    list(hf_blenderbot.hf_tensors(missing, config))
  wrong = {**flat, "shared/embedding": np.zeros((VOCAB + 1, 64), np.float32)}
  with pytest.raises(ExportError, match=r"shared/embedding has shape \[51, 64\]"):
    list(hf_blenderbot.hf_tensors(wrong, config))
  with pytest.raises(ExportError, match="decoder_start_token_id"):
    hf_blenderbot.hf_config(config, {"pad_token_id": 0, "eos_token_id": 1})
