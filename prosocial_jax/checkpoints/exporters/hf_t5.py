"""Our T5 (v1.0, v1.1) as a Hugging Face `T5ForConditionalGeneration` folder.

Names: the importer's table (`importers.hf_t5.name_table`, Hugging Face name ->
our name, transform) read in the other direction, so the two directions cannot
drift apart; every transform it uses (copy, transpose) is its own inverse
(`INVERSE_TRANSFORMS`). Each of our parameters is placed exactly once; one the
table does not place, or a table entry the checkpoint lacks, is an error naming it.

What transformers 5.24 reads (models/t5/configuration_t5.py, modeling_t5.py):
* the MLP from `feed_forward_proj` ("relu"; "gated-gelu" = tanh GELU,
  `gelu_new`), a saved `dense_act_fn` / `is_gated_act` overriding it; both are
  written, so e.g. a gated exact GELU ("gated-gelu" + dense_act_fn "gelu") also
  reads back right. Our ("ACT", "linear") is HF's gated ACT: act(wi_0 x) * wi_1 x.
* the output: `T5Config.__post_init__` turns a given `tie_word_embeddings` into
  `scale_decoder_outputs` (decoder output times d_model**-0.5) and then sets
  `tie_word_embeddings` True whatever was given; a saved `scale_decoder_outputs`
  wins. v1.0 (`logits_via_embedding`): tied and scaled, as ours, and no
  lm_head.weight is written (transformers ties it to shared.weight). v1.1: both
  false and lm_head.weight = our decoder/logits_dense/kernel transposed; loading
  then keeps lm_head untied because it differs from shared.weight (transformers
  logs a warning saying so: its own save_pretrained of a v1.1 reads back the same).
* `encoder.embed_tokens` / `decoder.embed_tokens` are tied to `shared.weight`
  (`_tied_weights_keys`); save_pretrained leaves them out, and so do we.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

import numpy as np

from prosocial_jax.checkpoints.exporters.errors import ExportError
from prosocial_jax.checkpoints.importers import hf_t5 as hf_t5_import
from prosocial_jax.models.t5.config import T5Config

ARCHITECTURE = "T5ForConditionalGeneration"
# transformers' T5 layer norm is an RMS norm with this epsilon, as ours (models/layers.py).
LAYER_NORM_EPSILON = 1e-6


def _check_config(config) -> None:
  if not isinstance(config, T5Config):
    raise ExportError(f"The T5 exporter takes a T5Config, got {type(config).__name__}.")


def _mlp(config: T5Config) -> dict[str, Any]:
  """feed_forward_proj, dense_act_fn and is_gated_act for our `mlp_activations`, or an
  error naming what Hugging Face's T5 MLP cannot compute."""
  activations = tuple(config.mlp_activations)
  known = hf_t5_import.HF_ACTIVATION_NAMES
  # HF's T5 MLP is act(wi x) or act(wi_0 x) * wi_1 x: one activation, or one gated by a
  # linear branch second (the order of our wi_0 / wi_1, which the name table keeps).
  shape_ok = (len(activations) == 1 and activations[0] != "linear") or (
      len(activations) == 2 and activations[1] == "linear" and activations[0] != "linear")
  if not shape_ok:
    raise ExportError(
        f"mlp_activations {activations}: Hugging Face's T5 MLP computes act(wi x) or "
        "act(wi_0 x) * wi_1 x, i.e. ('ACT',) or ('ACT', 'linear'); this one has no "
        "counterpart there.")
  if activations[0] not in known:
    raise ExportError(f"MLP activation {activations[0]!r} (mlp_activations {activations}) has "
                      f"no Hugging Face T5 counterpart here; exportable: {sorted(known)}.")
  act = known[activations[0]]
  gated = len(activations) == 2
  if gated:
    # "gated-gelu" is the usual spelling of v1.1 (read as gelu_new); the dense_act_fn
    # written beside it wins, so a gated exact GELU ("gelu") reads back right too.
    proj = "gated-gelu" if act in ("gelu_new", "gelu") else f"gated-{act}"
  else:
    proj = act
  return {"feed_forward_proj": proj, "dense_act_fn": act, "is_gated_act": gated}


def hf_config(config: T5Config, special_ids: Mapping[str, int]) -> dict[str, Any]:
  """config.json of the exported model (what transformers 5.24 writes for it)."""
  _check_config(config)
  tied = bool(config.logits_via_embedding)
  depths = {}
  if config.num_decoder_layers != config.num_encoder_layers:
    # generate() sizes its KV cache from get_text_config(decoder=True).num_hidden_layers,
    # which for T5 is `num_layers` (the encoder's depth) unless a flat "decoder_layers"
    # key renames it (configuration_utils.get_text_config, transformers 5.24): without
    # it a decoder deeper than the encoder fails with an IndexError in cache_utils.
    # T5 itself reads only num_decoder_layers; our importer ignores this key.
    depths["decoder_layers"] = config.num_decoder_layers
  return {
      "architectures": [ARCHITECTURE],
      "model_type": "t5",
      "is_encoder_decoder": True,
      "vocab_size": config.vocab_size,
      "d_model": config.emb_dim,
      "d_kv": config.head_dim,
      "d_ff": config.mlp_dim,
      "num_heads": config.num_heads,
      "num_layers": config.num_encoder_layers,
      "num_decoder_layers": config.num_decoder_layers,
      **depths,
      "relative_attention_num_buckets": config.relative_attention_num_buckets,
      "relative_attention_max_distance": config.relative_attention_max_distance,
      **_mlp(config),
      # Both written: tie_word_embeddings is what older transformers and the hub's v1.1
      # configs say; 5.x reads scale_decoder_outputs (see the module docstring).
      "tie_word_embeddings": tied,
      "scale_decoder_outputs": tied,
      "layer_norm_epsilon": LAYER_NORM_EPSILON,
      "dropout_rate": config.dropout_rate,  # the training run's; inference runs in eval mode
      "initializer_factor": 1.0,
      "dtype": "float32",  # the weights written (hf_files.py), whatever the run computed in
      "use_cache": True,
      "pad_token_id": special_ids["pad_token_id"],
      "eos_token_id": special_ids["eos_token_id"],
      "decoder_start_token_id": special_ids["decoder_start_token_id"],
  }


def generation_config(config: T5Config, special_ids: Mapping[str, int]) -> dict[str, Any]:
  """generation_config.json: how generate() starts, stops and pads (greedy by default,
  as transformers' own defaults; our DecodeOptions' eos / decoder start)."""
  _check_config(config)
  return {"decoder_start_token_id": special_ids["decoder_start_token_id"],
          "eos_token_id": special_ids["eos_token_id"],
          "pad_token_id": special_ids["pad_token_id"]}


def _table(config: T5Config) -> list[tuple[str, str, str]]:
  table = list(hf_t5_import.name_table(config))
  if not config.logits_via_embedding:  # v1.1: an own output layer
    table.append(hf_t5_import.output_row())
  return table


def _expected_shapes(config: T5Config) -> dict[str, tuple[int, ...]]:
  from prosocial_jax.checkpoints.importers.base import expected_param_shapes  # pylint: disable=import-outside-toplevel
  # The unscanned layout, the one `flat` comes in (stored.params(unscanned=True)).
  return expected_param_shapes(dataclasses.replace(config, scan_layers=False))


def hf_tensors(flat: Mapping[str, np.ndarray], config: T5Config
               ) -> Iterator[tuple[str, np.ndarray]]:
  """(Hugging Face name, float32 array) for each of our unscanned parameters `flat`
  ('encoder/layers_0/attention/query/kernel' -> array). Everything is checked before
  the first tensor is made (unplaceable parameters, missing ones, shapes, the MLP),
  so a refusal never leaves a half-written folder behind."""
  _check_config(config)
  _mlp(config)
  table = _table(config)
  placed = {ours for _, ours, _ in table}
  problems = [f"our parameter {name} has no Hugging Face T5 counterpart (unmapped)"
              for name in sorted(set(flat) - placed)]
  problems += [f"the checkpoint lacks {ours} (Hugging Face {hf})"
               for hf, ours, _ in table if ours not in flat]
  expected = _expected_shapes(config)
  problems += [f"{ours} has shape {list(np.shape(flat[ours]))}, the config makes it "
               f"{list(expected[ours])}" for _, ours, _ in table
               if ours in flat and ours in expected
               and tuple(np.shape(flat[ours])) != tuple(expected[ours])]
  unknown = sorted({t for _, _, t in table} - set(hf_t5_import.INVERSE_TRANSFORMS))
  if unknown:  # a table bug, not the checkpoint's
    raise AssertionError(f"no inverse of the import transforms {unknown}")
  if problems:
    shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
    raise ExportError("Cannot export this checkpoint as a Hugging Face T5:\n  "
                      + "\n  ".join(shown))
  return _tensors(flat, table, config)


def _tensors(flat, table, config) -> Iterator[tuple[str, np.ndarray]]:
  for hf, ours, transform in table:
    array = hf_t5_import.INVERSE_TRANSFORMS[transform](np.asarray(flat[ours]), config)
    yield hf, np.ascontiguousarray(array, np.float32)
