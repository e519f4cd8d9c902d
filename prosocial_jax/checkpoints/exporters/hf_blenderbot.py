"""Prost -> Hugging Face `BlenderbotForConditionalGeneration` (the importer read backwards).

Names: the one rule of `models/prost/hf_names.py`, the same function the importer
(`importers/hf_blenderbot.py`) uses: HF key = `hf_names.hf_key(our path)`, every
projection kernel transposed (ours [in, out], torch's [out, in]). Nothing else is
renamed, merged or split.

What is written is what `save_pretrained` writes for the same model: every
parameter once, under its `model.*` name, plus the zero buffer
`final_logits_bias` [1, vocab] (Prost has no output bias). The tied copies
(`model.{encoder,decoder}.embed_tokens.weight`, `lm_head.weight`) are left out,
as `save_pretrained` leaves them out: `tie_word_embeddings` true makes
transformers point them at `model.shared.weight` on load.

The architecture, and what config.json says about it: transformers' Blenderbot is
pre-layer-norm with a final layer norm per stack and NO `layernorm_embedding`
(that is BlenderbotSmall), learned positions from 0 (no BART offset), layer
norms at torch's fixed epsilon 1e-5 and head_dim = d_model / heads — exactly
Prost. transformers 5.24's `BlenderbotConfig` has no field for the layer-norm
placement; the legacy keys of facebook/blenderbot-3B's config.json
(`normalize_before`, `layernorm_variant`, ...) are written too, with the values
that describe this math, for older readers and for our importer, which checks them.
A Prost config that Blenderbot cannot express (another epsilon, head_dim * heads
!= emb_dim, an activation without an HF name the importer maps back, a field
this exporter does not know) is refused, naming the field.

Special ids: the ones of OUR vocabulary (`special_ids`, from the tokenizer
writer: pad 0, eos 1, decoder start 0 for SeqIO), never BlenderBot's own (pad 0,
bos 1, eos 2): the model was trained with ours. Blenderbot's config defaults that
would change greedy decoding (`forced_eos_token_id` 2, `encoder_no_repeat_ngram_size`
3) are written off, so `generate()` decodes as our `predict_batch` does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

import numpy as np

from prosocial_jax.checkpoints.compatibility import RUN_SETTINGS
from prosocial_jax.checkpoints.exporters.errors import ExportError
from prosocial_jax.checkpoints.importers.base import expected_param_shapes
from prosocial_jax.models.prost import hf_names
from prosocial_jax.models.prost.config import ProstConfig

ARCHITECTURE = "BlenderbotForConditionalGeneration"

# Our activation -> HF `activation_function`: the inverse of the importer's table
# (importers/hf_blenderbot.py `_ACTIVATIONS`), one HF name each, so an export reads
# back as the same config. "gelu" is our tanh approximation (HF "gelu_new"),
# "gelu_exact" the erf form (HF "gelu", BlenderBot's).
ACTIVATIONS = {"gelu_exact": "gelu", "gelu": "gelu_new", "relu": "relu", "silu": "silu"}

# torch's nn.LayerNorm default, the only epsilon transformers' Blenderbot has.
HF_LAYER_NORM_EPSILON = 1e-5

# Keys transformers 3.x read (kept in facebook/blenderbot-3B's config.json, ignored
# by today's transformers), with the values that describe Prost's layer norms:
# pre-layer-norm, a final norm per stack, no norm on the embeddings.
LEGACY_KEYS = {"normalize_before": True, "add_final_layer_norm": True,
               "normalize_embedding": False, "layernorm_variant": "prelayernorm",
               "static_position_embeddings": False}

# Fields written into config.json below (or checked to be expressible).
_MODEL_FIELDS = frozenset({"vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim",
                           "num_encoder_layers", "num_decoder_layers", "max_positions",
                           "activation", "scale_embedding", "layer_norm_epsilon",
                           "dropout_rate", "attention_dropout_rate"})
# How a run executes the model, not what the model is: nothing in config.json (the
# dropout rates excepted, which Blenderbot's config records). `dtype` is the activation
# dtype; the parameters, and so the export, are float32.
_RUN_FIELDS = frozenset(RUN_SETTINGS + ("dtype", "scan_layers")) - _MODEL_FIELDS


def check_config(config: Any) -> ProstConfig:
  """`config` when Blenderbot can express it, else an error naming the field."""
  if not isinstance(config, ProstConfig):
    raise ExportError(f"The Blenderbot exporter takes a ProstConfig, got {type(config).__name__}")
  unknown = [f.name for f in dataclasses.fields(config)
             if f.name not in _MODEL_FIELDS | _RUN_FIELDS]
  if unknown:  # a field added to ProstConfig after this exporter: say so, do not drop it
    raise ExportError(f"ProstConfig field(s) {', '.join(unknown)} have no Blenderbot "
                 f"counterpart known to this exporter")
  if config.layer_norm_epsilon != HF_LAYER_NORM_EPSILON:
    raise ExportError(f"layer_norm_epsilon={config.layer_norm_epsilon}: transformers' Blenderbot "
                 f"layer norms use torch's fixed {HF_LAYER_NORM_EPSILON} (no config field)")
  if config.num_heads * config.head_dim != config.emb_dim:
    raise ExportError(f"head_dim={config.head_dim} x num_heads={config.num_heads} != emb_dim="
                 f"{config.emb_dim}: Blenderbot's head size is d_model / attention_heads")
  if config.activation not in ACTIVATIONS:
    raise ExportError(f"activation={config.activation!r} has no Blenderbot activation_function "
                 f"here; exportable: {sorted(ACTIVATIONS)}")
  return config


def hf_config(config: ProstConfig, special_ids: Mapping[str, Any]) -> dict[str, Any]:
  """config.json for `BlenderbotConfig` (transformers 5.24), with our special ids."""
  config = check_config(config)
  return {
      "model_type": "blenderbot", "architectures": [ARCHITECTURE],
      "vocab_size": config.vocab_size, "d_model": config.emb_dim,
      "encoder_layers": config.num_encoder_layers,
      "decoder_layers": config.num_decoder_layers,
      # Prost has one head count and one MLP width for both stacks.
      "encoder_attention_heads": config.num_heads, "decoder_attention_heads": config.num_heads,
      "encoder_ffn_dim": config.mlp_dim, "decoder_ffn_dim": config.mlp_dim,
      "max_position_embeddings": config.max_positions,
      "activation_function": ACTIVATIONS[config.activation],
      "scale_embedding": config.scale_embedding,
      "dropout": config.dropout_rate, "attention_dropout": config.attention_dropout_rate,
      "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
      # The output layer is the shared embedding (Prost has no lm_head of its own).
      "tie_word_embeddings": True, "is_encoder_decoder": True, "use_cache": True,
      "dtype": "float32",  # what model.safetensors holds
      **LEGACY_KEYS,
      **_special_ids(special_ids),
      # Blenderbot's defaults (2 and 3) would force BlenderBot's eos id (our unk) at
      # max_length and ban encoder n-grams; our decoding does neither.
      "forced_eos_token_id": None, "encoder_no_repeat_ngram_size": 0,
  }


def generation_config(config: ProstConfig, special_ids: Mapping[str, Any]) -> dict[str, Any]:
  """generation_config.json: greedy decoding with our ids, as `predict_batch`'s default."""
  config = check_config(config)
  return {
      **_special_ids(special_ids),
      "forced_eos_token_id": None, "encoder_no_repeat_ngram_size": 0,
      "do_sample": False, "num_beams": 1,
      # No max_length: transformers' default (20 new tokens) is already capped at
      # max_position_embeddings, and a written one clashes with a caller's max_new_tokens.
  }


def _special_ids(special_ids: Mapping[str, Any]) -> dict[str, Any]:
  for key in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
    if special_ids.get(key) is None:
      raise ExportError(f"special_ids lacks {key} (the vocabulary's): {dict(special_ids)}")
  return {"pad_token_id": special_ids["pad_token_id"],
          "eos_token_id": special_ids["eos_token_id"],
          "decoder_start_token_id": special_ids["decoder_start_token_id"],
          # Unused by an encoder-decoder's generate (it starts from decoder_start);
          # None rather than Blenderbot's default 1, which is our EOS.
          "bos_token_id": special_ids.get("bos_token_id")}


def expected_shapes(config: ProstConfig) -> dict[str, tuple[int, ...]]:
  """Every unscanned Prost parameter of `config`, by our path, with its shape."""
  return expected_param_shapes(dataclasses.replace(config, scan_layers=False))


def hf_tensors(flat: Mapping[str, np.ndarray],
               config: ProstConfig) -> Iterator[tuple[str, np.ndarray]]:
  """Our unscanned parameters (path -> array) as (HF name, float32 array), each once,
  then `final_logits_bias`. Refuses, before yielding anything, a parameter the model
  does not have (so no mapping for it), one missing, or one of another shape."""
  config = check_config(config)
  expected = expected_shapes(config)
  extra = sorted(set(flat) - set(expected))
  if extra:
    raise ExportError(f"{len(extra)} parameter(s) that a Prost model of this config does not have "
                 f"and Blenderbot has no tensor for: " + ", ".join(extra[:8]) +
                 (" ..." if len(extra) > 8 else ""))
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise ExportError(f"{len(missing)} parameter(s) missing from the checkpoint: " +
                 ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
  for path, shape in expected.items():
    if tuple(flat[path].shape) != tuple(shape):
      raise ExportError(f"Parameter {path} has shape {list(flat[path].shape)}; the config gives "
                   f"{list(shape)}")
  names = {path: hf_names.hf_key(path) for path in expected}
  if len(set(names.values())) != len(names):  # the rule is one to one; keep it so
    raise ExportError("Two Prost parameters map to one Blenderbot name")
  for path, name in names.items():
    value = np.asarray(flat[path], np.float32)
    yield name, np.ascontiguousarray(value.T) if hf_names.is_transposed(path) else value
  for buffer in hf_names.ZERO_BUFFERS:  # final_logits_bias: [1, vocab] zeros
    yield buffer, np.zeros((1, config.vocab_size), np.float32)
