"""Hugging Face `BlenderbotForConditionalGeneration` -> Prost (facebook/blenderbot-3B).

A directory holding `config.json` (model_type "blenderbot") and its weights:
`model.safetensors`, sharded safetensors (`model.safetensors.index.json`), or
PyTorch's `pytorch_model.bin` (optionally sharded, `pytorch_model.bin.index.json`),
read with `torch.load(..., weights_only=True)` so no pickled code runs. When
both kinds are there, safetensors is read (as transformers does); the files
not read are reported as ignored.

Names: the one rule of `models/prost/hf_names.py` (our tree mirrors HF's state
dict); the only transform is the transpose of every projection kernel (torch
keeps [out, in]). Tensors come out as float32 (float16 / bfloat16 / float64
sources are cast), one at a time, by `hf_weights.WeightFiles` (safetensors at
the byte ranges their header gives, `.bin` files memory-mapped); a tensor that
is not floating point is refused there, naming it and its file.

What the architecture must be (read from config.json, checked, else refused
naming the field): transformers' Blenderbot, which is pre-layer-norm with a
final layer norm per stack, has NO `layernorm_embedding` (that is
BlenderbotSmall, model_type "blenderbot-small", facebook/blenderbot-90M: not
Prost) and learned positions indexed from 0 (no BART-style offset of 2:
`BlenderbotLearnedPositionalEmbedding` has `max_position_embeddings` rows).
`scale_embedding` (transformers' default False; True in blenderbot-3B) and the
activation become config fields; layer norms use torch's fixed epsilon 1e-5;
query scaling is head_dim^-0.5 in both. Legacy BART-era keys that today's
transformers ignores but that would describe other math on the same tensors
(`normalize_before` false, `layernorm_variant` not "prelayernorm") are refused.

Tied and zero tensors: `model.{encoder,decoder}.embed_tokens.weight` and
`lm_head.weight` are copies of `model.shared.weight` (transformers' saves drop
them; `torch.save(state_dict)` keeps them). When present each must equal it
exactly — our Prost ties them, so an untied output layer cannot be imported —
and is reported as ignored. (If `model.shared.weight` itself is absent, the
first tied copy present stands in for it.) `final_logits_bias` [1, vocab] must
be all zeros (Prost has no output bias) and is reported as ignored.

Vocabulary: BlenderBot's byte-level BPE tokenizer files (vocab.json + merges.txt,
or tokenizer.json) are reported as {"kind": "hf_tokenizer", "source": <dir>}.
Our SeqIO pipeline cannot use that vocabulary yet, and BlenderBot's special ids
(pad 0, bos / decoder start 1, eos 2, unk 3: config.json's *_token_id) differ
from our pipeline's (pad 0, eos 1, decoder start 0) — a model seeded from this
checkpoint must keep its vocabulary (DESIGN.md), so both are the caller's to
honour before training or decoding with it.

Tensors are named in the unscanned layout (`layers_{i}`) whatever the given
config's `scan_layers` says: stacking for a scanned run is the caller's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Iterator, Mapping, Optional

import numpy as np
from etils import epath

from prosocial_jax.checkpoints.compatibility import RUN_SETTINGS
from prosocial_jax.checkpoints.importers.base import (CheckpointImportError, Imported,
                                                       ImportReport, expected_param_shapes)
from prosocial_jax.checkpoints.importers.hf_weights import (SAFETENSORS, SAFETENSORS_INDEX, TORCH,
                                                             TORCH_INDEX, WeightFiles, weights_file)
from prosocial_jax.models.prost import hf_names
from prosocial_jax.models.prost.config import ProstConfig

NAME = "hf_blenderbot"

_CONFIG_FILE = "config.json"
_WEIGHT_FILES = (SAFETENSORS_INDEX, SAFETENSORS, TORCH_INDEX, TORCH)

# `BlenderbotConfig`'s defaults (transformers 5.24): a config.json may omit a field that
# has its default, so a missing field means this value, as it does to transformers.
# tests/checkpoints/test_hf_blenderbot_import.py checks them against transformers.
HF_DEFAULTS: dict[str, Any] = dict(
    vocab_size=8008, max_position_embeddings=128, encoder_layers=2, encoder_ffn_dim=10240,
    encoder_attention_heads=32, decoder_layers=24, decoder_ffn_dim=10240,
    decoder_attention_heads=32, activation_function="gelu", d_model=2560, dropout=0.1,
    attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0,
    decoder_layerdrop=0.0, scale_embedding=False, tie_word_embeddings=True)

# HF activation_function -> our `layers.activation` name. HF "gelu" is the erf form;
# "gelu_new" / "gelu_pytorch_tanh" are the tanh approximation (flax's default gelu).
_ACTIVATIONS = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                "relu": "relu", "silu": "silu", "swish": "silu"}

# Legacy keys (transformers 3.x, kept in old config.json files such as blenderbot-3B's)
# that today's Blenderbot ignores, and the only value that describes its math.
_LEGACY = {"normalize_before": True, "layernorm_variant": "prelayernorm"}

# Our field <- how config.json says it (for messages).
_HF_FIELD = dict(vocab_size="vocab_size", emb_dim="d_model", num_heads="encoder_attention_heads",
                 head_dim="d_model / encoder_attention_heads", mlp_dim="encoder_ffn_dim",
                 num_encoder_layers="encoder_layers", num_decoder_layers="decoder_layers",
                 max_positions="max_position_embeddings", activation="activation_function",
                 scale_embedding="scale_embedding",
                 layer_norm_epsilon="(none: torch's LayerNorm default 1e-5)")

# How a run executes the model, not what the model is: a given config may choose these
# (the run settings a resume may change, plus the activation dtype and the layer layout).
_RUN_FIELDS = RUN_SETTINGS + ("dtype", "scan_layers")

SHARED = "model.shared.weight"
TIED = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
        "lm_head.weight")
_SHARED_PATH = "shared/embedding"


# --- Finding the files ----------------------------------------------------------------------

def _read_json(file: epath.Path) -> Any:
  try:
    return json.loads(file.read_text())
  except (OSError, ValueError) as e:
    raise CheckpointImportError(f"Cannot read {file}: {e}") from e


def _is_blenderbot(hf: Any) -> bool:
  return isinstance(hf, dict) and (
      hf.get("model_type") == "blenderbot" or
      "BlenderbotForConditionalGeneration" in (hf.get("architectures") or ()))


def detect(path) -> bool:
  """A directory with a Blenderbot config.json and weights in a format we read."""
  path = epath.Path(path)
  try:
    if not (path / _CONFIG_FILE).exists():
      return False
    if weights_file(path) is None:
      return False
    return _is_blenderbot(json.loads((path / _CONFIG_FILE).read_text()))
  except (OSError, ValueError):
    return False


# --- The config -----------------------------------------------------------------------------

def config_from_hf(hf: Mapping[str, Any], source: str = _CONFIG_FILE) -> ProstConfig:
  """Our ProstConfig for a Blenderbot config.json (dict); refuses what Prost cannot compute."""
  if hf.get("model_type") == "blenderbot-small":
    raise CheckpointImportError(
        f"{source}: model_type 'blenderbot-small' (BlenderbotSmall, e.g. facebook/blenderbot-90M: "
        f"post-layer-norm with layernorm_embedding) is not Prost's architecture")
  if not _is_blenderbot(hf):
    raise CheckpointImportError(f"{source}: model_type {hf.get('model_type')!r}, "
                                f"architectures {hf.get('architectures')}; expected a Blenderbot")
  get = lambda key: hf.get(key, HF_DEFAULTS[key])
  for key, value in _LEGACY.items():
    if key in hf and hf[key] != value:
      raise CheckpointImportError(
          f"{source}: {key}={hf[key]!r} describes another layer-norm placement than "
          f"Prost's pre-layer-norm (transformers' Blenderbot ignores {key} and is "
          f"pre-layer-norm too); expected {value!r}")
  for ours, theirs in (("encoder_attention_heads", "decoder_attention_heads"),
                       ("encoder_ffn_dim", "decoder_ffn_dim")):
    if get(ours) != get(theirs):
      raise CheckpointImportError(f"{source}: {ours}={get(ours)} but {theirs}={get(theirs)}; "
                                  f"Prost has one value for both stacks")
  if not get("tie_word_embeddings"):
    raise CheckpointImportError(f"{source}: tie_word_embeddings=false (an lm_head of its own); "
                                f"Prost's output layer is the shared embedding")
  heads, d_model = get("encoder_attention_heads"), get("d_model")
  if d_model % heads:
    raise CheckpointImportError(f"{source}: d_model {d_model} is not a multiple of "
                                f"encoder_attention_heads {heads}")
  activation = get("activation_function")
  if activation not in _ACTIVATIONS:
    raise CheckpointImportError(f"{source}: activation_function {activation!r} is not one "
                                f"Prost has; known: {sorted(_ACTIVATIONS)}")
  return ProstConfig(
      vocab_size=get("vocab_size"), emb_dim=d_model, num_heads=heads, head_dim=d_model // heads,
      mlp_dim=get("encoder_ffn_dim"), num_encoder_layers=get("encoder_layers"),
      num_decoder_layers=get("decoder_layers"), max_positions=get("max_position_embeddings"),
      activation=_ACTIVATIONS[activation], scale_embedding=bool(get("scale_embedding")),
      layer_norm_epsilon=1e-5,  # torch's nn.LayerNorm default; Blenderbot has no field for it
      dropout_rate=float(get("dropout")), attention_dropout_rate=float(get("attention_dropout")))


def _checked_config(given: Any, found: ProstConfig, source: str) -> ProstConfig:
  """`given` when it describes the same model as the checkpoint (run fields may differ)."""
  if given is None:
    return found
  if isinstance(given, Mapping):
    given = ProstConfig.from_dict(given)
  if not isinstance(given, ProstConfig):
    raise CheckpointImportError(f"{source} is a Prost (Blenderbot) checkpoint; the given config "
                                f"is a {type(given).__name__}")
  differences = [
      f"config field {f.name}: given {getattr(given, f.name)!r}, but {source} has "
      f"{getattr(found, f.name)!r} ({_HF_FIELD.get(f.name, f.name)})"
      for f in dataclasses.fields(ProstConfig)
      if f.name not in _RUN_FIELDS and getattr(given, f.name) != getattr(found, f.name)]
  if differences:  # every one, as the T5 importer lists them
    raise CheckpointImportError("; ".join(differences))
  return given


# --- The plan: which source tensor becomes which of ours -----------------------------------

@dataclasses.dataclass(frozen=True)
class _Plan:
  sources: dict[str, str]       # our path -> HF name, in the order they are yielded
  transposed: frozenset[str]    # our paths whose HF tensor is the transpose


def _where(weights: WeightFiles, name: str) -> str:
  return f"{name} in {weights.file(name)}"


def _plan(weights: WeightFiles, config: ProstConfig, report: ImportReport) -> _Plan:
  """Maps every parameter to its source tensor, checking names and shapes from the
  headers, then the values of the tied copies and of final_logits_bias."""
  expected = expected_param_shapes(dataclasses.replace(config, scan_layers=False))
  shared_source = SHARED if SHARED in weights else next(
      (name for name in TIED if name in weights), SHARED)
  sources, transposed, missing = {}, set(), []
  for path, shape in expected.items():
    name = shared_source if path == _SHARED_PATH else hf_names.hf_key(path)
    if name not in weights:
      missing.append(f"{name} (our {path} {list(shape)})")
      continue
    want = shape[::-1] if hf_names.is_transposed(path) else shape
    if weights.shape(name) != want:
      raise CheckpointImportError(f"Tensor {_where(weights, name)} has shape "
                                  f"{list(weights.shape(name))}; the config gives {list(want)} "
                                  f"(our {path})")
    sources[path] = name
    if hf_names.is_transposed(path):
      transposed.add(path)
  if missing:
    raise CheckpointImportError(f"{len(missing)} tensor(s) missing from {weights.source}: " +
                                "; ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
  tied = [name for name in TIED if name in weights and name != shared_source]
  buffers = [name for name in hf_names.ZERO_BUFFERS if name in weights]
  leftover = sorted(set(weights.names()) - set(sources.values()) - set(tied) - set(buffers))
  if leftover:
    raise CheckpointImportError(
        f"{len(leftover)} tensor(s) that Prost has no place for: " +
        "; ".join(_where(weights, name) for name in leftover[:8]) +
        (" ..." if len(leftover) > 8 else ""))

  # Values: the tied copies must be the shared embedding, the logits bias must be zero.
  shared = weights.read(shared_source)
  for name in tied:
    if weights.shape(name) != shared.shape:
      raise CheckpointImportError(f"Tensor {_where(weights, name)} has shape "
                                  f"{list(weights.shape(name))}; as a tied copy of "
                                  f"{shared_source} it must be {list(shared.shape)}")
    if not np.array_equal(weights.read(name), shared):
      raise CheckpointImportError(f"Tensor {_where(weights, name)} differs from {shared_source}; "
                                  f"Prost ties the token embeddings and the output layer, so "
                                  f"an untied copy cannot be imported")
    report.ignored[name] = f"tied copy of {shared_source} (equal)"
  del shared
  for name in buffers:
    if weights.shape(name) != (1, config.vocab_size):
      raise CheckpointImportError(f"Tensor {_where(weights, name)} has shape "
                                  f"{list(weights.shape(name))}; expected [1, {config.vocab_size}]")
    if np.any(weights.read(name)):
      raise CheckpointImportError(f"Tensor {_where(weights, name)} is not all zeros; Prost's "
                                  f"output layer has no bias")
    report.ignored[name] = "zero buffer (all zeros; Prost has no output bias)"
  directory = weights.source.parent
  for name in _WEIGHT_FILES:  # the same weights in another format, or an unused index
    if name != weights.source.name and (directory / name).exists():
      report.ignored[name] = f"the same weights as {weights.source.name}, which was read"

  # Yield in file order, so a sharded checkpoint is read one shard at a time.
  position = {name: n for n, name in enumerate(weights.names())}
  order = sorted(sources, key=lambda path: position[sources[path]])
  for path in order:
    name = sources[path]
    how = ["transpose"] if path in transposed else []
    if weights.dtype(name) != "F32":
      how.append(f"{weights.dtype(name)} -> float32")
    if name != hf_names.hf_key(path):
      how.append(f"from {name} ({SHARED} absent)")
    if how:
      report.converted[path] = ", ".join(how)
  report.loaded.extend(order)
  return _Plan({path: sources[path] for path in order}, frozenset(transposed))


def _stream(weights: WeightFiles, plan: _Plan) -> Iterator[tuple[str, np.ndarray]]:
  try:
    for ours, name in plan.sources.items():
      value = weights.read(name)
      yield ours, np.ascontiguousarray(value.T) if ours in plan.transposed else value
  finally:
    weights.release()


def read(path, config: Any = None) -> Imported:
  """Checks the checkpoint at `path` (names, shapes, dtypes, tied copies, zero buffers,
  `config` if given) and returns it as ours; `tensors()` then streams it."""
  path = epath.Path(path)
  config_file = path / _CONFIG_FILE
  if not config_file.exists():
    raise CheckpointImportError(f"{path}: no {_CONFIG_FILE}")
  hf = _read_json(config_file)
  if not isinstance(hf, dict):
    raise CheckpointImportError(f"{config_file} is not a JSON object")
  found = config_from_hf(hf, str(config_file))
  config = _checked_config(config, found, str(config_file))
  report = ImportReport()
  for key in ("activation_dropout", "encoder_layerdrop", "decoder_layerdrop"):
    if hf.get(key):  # training-time only, and Prost has no such knob
      report.ignored[f"{_CONFIG_FILE}:{key}"] = f"{hf[key]} (Prost has no {key})"
  try:
    weights = WeightFiles(path)
  except OSError as e:  # a shard the index names but the folder lacks, say
    raise CheckpointImportError(f"Cannot read the weights in {path}: {e}") from e
  try:
    plan = _plan(weights, config, report)
  finally:
    weights.release()
  return Imported(format=NAME, source=str(path), config=config,
                  tensors=functools.partial(_stream, weights, plan), report=report,
                  vocabulary=_vocabulary(path))


def _vocabulary(path: epath.Path) -> Optional[dict[str, Any]]:
  has = lambda name: (path / name).exists()
  if (has("vocab.json") and has("merges.txt")) or has("tokenizer.json"):
    return {"kind": "hf_tokenizer", "source": str(path)}
  return None
