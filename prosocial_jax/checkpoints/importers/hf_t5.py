"""Hugging Face T5 (`T5ForConditionalGeneration` directories) as our T5.

A directory with `config.json` (model_type "t5") and weights (hf_weights.py:
safetensors, sharded or not, or PyTorch `.bin`), optionally `spiece.model`.

Config: our T5Config from config.json with transformers' (5.x) reading of it:
`d_model`, `d_kv`, `d_ff`, `num_heads`, `num_layers` (encoder) and
`num_decoder_layers` (decoder; absent: `num_layers`), the relative-attention
buckets and distance, the MLP from `feed_forward_proj` ("relu": v1.0;
"gated-gelu": v1.1's gated tanh-GELU), overridden by a saved `dense_act_fn` /
`is_gated_act` as transformers does. Dropout is 0: fine-tuning sets its own.

Output layer, decided as transformers 5.24 runs the checkpoint:
* scaled: `scale_decoder_outputs` when config.json has it, else
  `tie_word_embeddings` (default true) — the decoder output is multiplied by
  d_model**-0.5 before the output layer;
* tied: no `lm_head.weight`, or one equal to `shared.weight` while config.json
  does not say `tie_word_embeddings: false`.
Tied and scaled is T5 v1.0 (`logits_via_embedding=True`); untied and unscaled
is v1.1 (`decoder/logits_dense/kernel` = lm_head transposed). The two mixed
cases become an own output kernel that computes the same logits (a copy of the
embedding, or lm_head times d_model**-0.5) and are named in the report.

Names: one table from config (`name_table`), Hugging Face name -> (our name,
transform); kernels are stored [out, in] by PyTorch and [in, out] by us, the
relative-position table [buckets, heads] there and [heads, buckets] here, and
only block 0 of each stack has it (shared by the stack's layers, as ours).
`encoder.embed_tokens` / `decoder.embed_tokens` and a tied `lm_head` are copies
of `shared.weight` (checked equal) and are skipped; so is the unused
cross-attention position table some old checkpoints carry. Any other tensor,
a missing one or a shape the config does not expect is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any, Callable, Optional

import numpy as np
from etils import epath

from prosocial_jax.checkpoints.importers import t5_names
from prosocial_jax.checkpoints.importers.base import (CheckpointImportError, Imported,
                                                      ImportReport, expected_param_shapes)
from prosocial_jax.checkpoints.importers.hf_weights import WeightFiles, weights_file
from prosocial_jax.models.t5.config import T5Config

NAME = "hf_t5"

# Architectures with T5ForConditionalGeneration's weights (T5WithLMHeadModel: its old name).
_ARCHITECTURES = ("T5ForConditionalGeneration", "T5WithLMHeadModel", "T5Model")
# transformers' T5Config defaults, for config.json files that leave a field out.
_HF_DEFAULTS = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
                    num_heads=8, relative_attention_num_buckets=32,
                    relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
                    feed_forward_proj="relu")
# Our activations (models/layers.activation) -> the name transformers' ACT2FN has for
# the same function: what an export writes (exporters/hf_t5.py). Our "gelu" is the tanh
# approximation, HF "gelu_new"; our "gelu_exact" the erf form, HF "gelu".
HF_ACTIVATION_NAMES = {"relu": "relu", "gelu": "gelu_new", "gelu_exact": "gelu", "silu": "silu"}
# transformers' activation names -> ours: the inverse, plus aliases an import also reads.
_ACTIVATIONS = {**{hf: ours for ours, hf in HF_ACTIVATION_NAMES.items()},
                "gelu_pytorch_tanh": "gelu", "swish": "silu"}
_RMS_EPSILON = 1e-6  # our RMSNorm's (models/layers.py)
# Hugging Face's module of each sub-layer, in t5_names.SUBLAYERS' order.
_HF_SUBLAYERS = {"encoder": ("SelfAttention", "DenseReluDense"),
                 "decoder": ("SelfAttention", "EncDecAttention", "DenseReluDense")}
_UNUSED_CROSS_BIAS = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"
_EMBEDDING_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


# Transforms: name -> function of (source array, config).
def _copy(x, cfg):
  return x


def _transpose(x, cfg):
  return x.T


def _transpose_scaled(x, cfg):
  return x.T * np.float32(cfg.emb_dim ** -0.5)


TRANSFORMS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "copy": _copy,
    # Kernels [out, in] -> [in, out]; the relative bias [buckets, heads] -> [heads, buckets].
    "transpose": _transpose,
    "transpose, times d_model**-0.5": _transpose_scaled,  # a scaled, untied lm_head
    # Tied but unscaled: the output kernel is the embedding itself.
    "transpose (the tied embedding as an own output kernel)": _transpose,
}
# Ours -> Hugging Face, for the transforms an export's table uses (exporters/hf_t5.py):
# both are their own inverse. The scaled / tied-unscaled rows only arise on import.
INVERSE_TRANSFORMS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "copy": _copy, "transpose": _transpose}


def output_row(transform: str = "transpose") -> tuple[str, str, str]:
  """The table row of an own output kernel (v1.1's lm_head; `_output_layer` decides
  when an import needs it, an export when `logits_via_embedding` is off)."""
  return ("lm_head.weight", t5_names.OUTPUT_KERNEL, transform)


def name_table(cfg: T5Config) -> list[tuple[str, str, str]]:
  """(Hugging Face name, our name, transform) of every parameter of `cfg`'s model but
  the output layer (see `_output_layer`)."""
  if len(cfg.mlp_activations) == 1:
    mlp = ("wi", "wo")
  else:
    mlp = tuple(f"wi_{j}" for j in range(len(cfg.mlp_activations))) + ("wo",)
  table = [("shared.weight", t5_names.EMBEDDING, "copy")]
  for stack, depth in (("encoder", cfg.num_encoder_layers), ("decoder", cfg.num_decoder_layers)):
    table.append((f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                  t5_names.relpos(stack), "transpose"))
    for i in range(depth):
      for k, module in enumerate(_HF_SUBLAYERS[stack]):
        prefix = f"{stack}.block.{i}.layer.{k}"
        table.append((f"{prefix}.layer_norm.weight", t5_names.layer(stack, i, k, "norm"), "copy"))
        for part in (mlp if module == "DenseReluDense" else t5_names.ATTENTION):
          table.append((f"{prefix}.{module}.{part}.weight", t5_names.layer(stack, i, k, part),
                        "transpose"))
    table.append((f"{stack}.final_layer_norm.weight", t5_names.final_norm(stack), "copy"))
  return table


def _read_config(directory: epath.Path) -> dict[str, Any]:
  path = directory / "config.json"
  if not path.exists():
    raise CheckpointImportError(f"{directory} has no config.json.")
  try:
    record = json.loads(path.read_text())
  except ValueError as error:
    raise CheckpointImportError(f"{path} is not JSON: {error}") from None
  if not isinstance(record, dict):
    raise CheckpointImportError(f"{path} is not a JSON object.")
  return record


def _is_t5(record: dict[str, Any]) -> bool:
  architectures = record.get("architectures") or []
  return record.get("model_type") == "t5" or any(a in _ARCHITECTURES for a in architectures)


def detect(path) -> bool:
  """A directory with a T5 config.json and Hugging Face weights."""
  directory = epath.Path(path)
  try:
    if not (directory / "config.json").exists():
      return False
    return _is_t5(_read_config(directory)) and weights_file(directory) is not None
  except (OSError, CheckpointImportError):
    return False


def _activations(record: dict[str, Any], where: str) -> tuple[str, ...]:
  proj = record.get("feed_forward_proj", _HF_DEFAULTS["feed_forward_proj"])
  parts = str(proj).split("-")
  if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
    raise CheckpointImportError(f"feed_forward_proj {proj!r} in {where}: expected 'ACT' or "
                                "'gated-ACT'.")
  # As transformers' T5Config: gated-gelu means the tanh GELU; saved values win.
  act = record.get("dense_act_fn") or ("gelu_new" if proj == "gated-gelu" else parts[-1])
  gated = record.get("is_gated_act", parts[0] == "gated" and len(parts) == 2)
  if act not in _ACTIVATIONS:
    raise CheckpointImportError(f"dense_act_fn {act!r} (feed_forward_proj {proj!r}) in {where} "
                                f"has no counterpart here; known: {sorted(_ACTIVATIONS)}.")
  return (_ACTIVATIONS[act], "linear") if gated else (_ACTIVATIONS[act],)


def _found_config(record: dict[str, Any], where: str) -> T5Config:
  """Our config for config.json (the output layer decided later)."""
  if record.get("model_type", "t5") != "t5":
    raise CheckpointImportError(f"model_type {record['model_type']!r} in {where}: this importer "
                                "reads T5 (model_type 't5').")
  architectures = record.get("architectures") or ["T5ForConditionalGeneration"]
  if not any(a in _ARCHITECTURES for a in architectures):
    raise CheckpointImportError(f"architectures {architectures} in {where}: expected one of "
                                f"{list(_ARCHITECTURES)} (an encoder-decoder with its weights).")
  if record.get("is_encoder_decoder") is False:
    raise CheckpointImportError(f"is_encoder_decoder false in {where}: not an encoder-decoder.")
  get = lambda name: record.get(name, _HF_DEFAULTS[name])
  epsilon = get("layer_norm_epsilon")
  if not np.isclose(epsilon, _RMS_EPSILON, rtol=1e-3, atol=0):
    raise CheckpointImportError(f"layer_norm_epsilon {epsilon} in {where}: our T5's RMS norm "
                                f"uses {_RMS_EPSILON}.")
  try:
    return T5Config(
        vocab_size=get("vocab_size"), emb_dim=get("d_model"), num_heads=get("num_heads"),
        head_dim=get("d_kv"), mlp_dim=get("d_ff"), num_encoder_layers=get("num_layers"),
        num_decoder_layers=record.get("num_decoder_layers") or get("num_layers"),
        mlp_activations=_activations(record, where), dropout_rate=0.0,
        relative_attention_num_buckets=get("relative_attention_num_buckets"),
        relative_attention_max_distance=get("relative_attention_max_distance"))
  except (TypeError, ValueError) as error:
    raise CheckpointImportError(f"{where}: {error}") from None


def _same_as_embedding(weights: WeightFiles, name: str) -> bool:
  # Reads both tensors (two embedding-sized arrays, once, at read time).
  if weights.shape(name) != weights.shape("shared.weight"):
    return False
  return np.array_equal(weights.read(name), weights.read("shared.weight"))


def _output_layer(record: dict[str, Any], weights: WeightFiles, report: ImportReport
                  ) -> tuple[bool, Optional[tuple[str, str, str]]]:
  """(logits_via_embedding, the table row of our own output kernel or None)."""
  scaled = record.get("scale_decoder_outputs", record.get("tie_word_embeddings", True) is not False)
  untied = "lm_head.weight" in weights and (
      record.get("tie_word_embeddings", True) is False
      or not _same_as_embedding(weights, "lm_head.weight"))
  if untied:
    transform = "transpose, times d_model**-0.5" if scaled else "transpose"
    return False, output_row(transform)
  if "lm_head.weight" in weights:
    report.ignored["lm_head.weight"] = "a copy of shared.weight (output layer tied to the embedding)"
  if scaled:
    return True, None
  # Tied but unscaled: not v1.0; the same logits from an own kernel holding the embedding.
  return False, ("shared.weight", t5_names.OUTPUT_KERNEL,
                 "transpose (the tied embedding as an own output kernel)")


def _skip_copies(weights: WeightFiles, report: ImportReport) -> None:
  for name in _EMBEDDING_COPIES:
    if name in weights:
      if not _same_as_embedding(weights, name):
        raise CheckpointImportError(
            f"{name} in {weights.file(name)} differs from shared.weight: our T5 has one token "
            "embedding for both stacks, so this checkpoint cannot be imported as it is.")
      report.ignored[name] = "a copy of shared.weight (tied input embedding)"
  if _UNUSED_CROSS_BIAS in weights:
    report.ignored[_UNUSED_CROSS_BIAS] = ("unused: T5's cross-attention has no position bias "
                                          "(transformers ignores it too)")


def _plan(table: list[tuple[str, str, str]], weights: WeightFiles, report: ImportReport,
          expected: dict[str, tuple[int, ...]], where: str) -> list[tuple[str, str, str]]:
  """(our name, Hugging Face name, transform) in file order; refuses leftovers, gaps
  and shapes the config does not expect."""
  order = {name: n for n, name in enumerate(weights.names())}
  mapped = {hf for hf, _, _ in table}
  problems = [f"unmapped tensor {name} in {weights.file(name)}" for name in order
              if name not in mapped and name not in report.ignored]
  problems += [f"missing tensor {hf} (our {ours}) in {weights.source}"
               for hf, ours, _ in table if hf not in order]
  plan = []
  for hf, ours, transform in table:
    if hf not in order:
      continue
    shape = weights.shape(hf)
    shape = shape[::-1] if transform.startswith("transpose") else shape
    if ours not in expected:  # a bug of the table, not of the checkpoint
      raise AssertionError(f"{ours} is not a parameter of the model")
    if tuple(shape) != tuple(expected[ours]):
      problems.append(f"shape of {hf} in {weights.file(hf)}: {list(weights.shape(hf))}, "
                      f"but {where} makes {ours} {list(expected[ours])}"
                      + (" (before transposing)" if transform.startswith("transpose") else ""))
    plan.append((ours, hf, transform))
  if problems:
    shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
    raise CheckpointImportError(f"Cannot import {weights.source.parent} as the T5 {where} "
                                "describes:\n  " + "\n  ".join(shown))
  missing = sorted(set(expected) - {ours for ours, _, _ in plan})
  if missing:  # also a table bug: every parameter must have a source
    raise AssertionError(f"no source for {missing}")
  plan.sort(key=lambda entry: order[entry[1]])
  for ours, hf, transform in plan:
    report.loaded.append(ours)
    notes = [transform] if transform != "copy" else []
    if weights.dtype(hf) != "F32":
      notes.append(f"{weights.dtype(hf)} -> float32")
    if notes:
      report.converted[ours] = ", ".join(notes)
  return plan


def _vocabulary(directory: epath.Path) -> Optional[dict[str, Any]]:
  model = directory / "spiece.model"
  if not model.exists():
    return None
  extra_ids = 100  # T5Tokenizer's default
  settings = directory / "tokenizer_config.json"
  if settings.exists():
    try:
      record = json.loads(settings.read_text())
    except ValueError:
      record = {}
    if isinstance(record.get("extra_ids"), int):
      extra_ids = record["extra_ids"]
    elif isinstance(record.get("additional_special_tokens"), list):
      # Fast tokenizers (ours, from `python -m prosocial_jax.export`) list the sentinels
      # instead of counting them.
      extra_ids = sum(1 for token in record["additional_special_tokens"]
                      if isinstance(token, str) and re.fullmatch(r"<extra_id_\d+>", token))
  return {"kind": "sentencepiece", "source": str(model), "extra_ids": extra_ids}


def _tensors(weights: WeightFiles, plan, cfg):
  try:
    for ours, hf, transform in plan:
      yield ours, np.ascontiguousarray(TRANSFORMS[transform](weights.read(hf), cfg), np.float32)
  finally:
    weights.release()


def read(path, config: Optional[T5Config] = None) -> Imported:
  """The Hugging Face T5 at `path` as ours; `config`, when given, must describe the
  same model (its run settings — dropout, dtype, matmul, remat — are kept)."""
  directory = epath.Path(path)
  record = _read_config(directory)
  where = str(directory / "config.json")
  found = _found_config(record, where)
  weights = WeightFiles(directory)
  report = ImportReport()
  _skip_copies(weights, report)
  tied, output = _output_layer(record, weights, report)
  found = dataclasses.replace(found, logits_via_embedding=tied)
  config = t5_names.check_config(found, config, source=str(path), found_in=where)
  table = name_table(found) + ([output] if output else [])
  weights.release()
  plan = _plan(table, weights, report, expected_param_shapes(found), where)
  return Imported(format=NAME, source=str(path), config=config,
                  tensors=functools.partial(_tensors, weights, plan, found), report=report,
                  vocabulary=_vocabulary(directory))

