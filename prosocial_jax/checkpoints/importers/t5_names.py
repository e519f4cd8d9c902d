"""Our T5's side of every T5 import (Hugging Face, Mesh-TensorFlow, T5X): names and checks.

Hugging Face (`encoder.block.{i}.layer.{k}.SelfAttention.q.weight`) and
Mesh-TensorFlow (`encoder/block_{i:03d}/layer_{k:03d}/SelfAttention/q`) number
the sub-layers of a block the same way and call the attention projections
q/k/v/o; our names (`models/t5/network.py`) follow T5X. The tables below say
which of our modules each sub-layer is, so each importer only spells its own
side once.
"""

from __future__ import annotations

from typing import Any, Optional

from prosocial_jax.checkpoints.importers.base import CheckpointImportError

# Attention projections: q/k/v/o (Hugging Face, Mesh-TF) -> ours.
ATTENTION = {"q": "query", "k": "key", "v": "value", "o": "out"}

# Sub-layer k of a block -> (our pre-norm, our module): encoder blocks have two,
# decoder blocks three (self-attention, cross-attention, MLP).
SUBLAYERS = {
    "encoder": (("pre_attention_layer_norm", "attention"), ("pre_mlp_layer_norm", "mlp")),
    "decoder": (("pre_self_attention_layer_norm", "self_attention"),
                ("pre_cross_attention_layer_norm", "encoder_decoder_attention"),
                ("pre_mlp_layer_norm", "mlp")),
}
FINAL_NORM = {"encoder": "encoder_norm", "decoder": "decoder_norm"}
EMBEDDING = "token_embedder/embedding"
OUTPUT_KERNEL = "decoder/logits_dense/kernel"


def relpos(stack: str) -> str:
  """The relative-position table of a stack (one per stack, shared by its layers)."""
  return f"{stack}/relpos_bias/rel_embedding"


def layer(stack: str, index: int, sublayer: int, part: str) -> str:
  """Our name of `part` of sub-layer `sublayer` of layer `index`: part 'norm' is its
  pre-norm's scale, 'q'/'k'/'v'/'o' an attention kernel, 'wi'/'wi_0'/'wi_1'/'wo' an
  MLP kernel."""
  norm, module = SUBLAYERS[stack][sublayer]
  prefix = f"{stack}/layers_{index}"
  if part == "norm":
    return f"{prefix}/{norm}/scale"
  if part in ATTENTION:
    return f"{prefix}/{module}/{ATTENTION[part]}/kernel"
  return f"{prefix}/{module}/{part}/kernel"


def final_norm(stack: str) -> str:
  return f"{stack}/{FINAL_NORM[stack]}/scale"


# What a T5 computes; the other fields (dropout, dtype, matmul, remat) say how to run it
# and come from the caller's config when one is given.
ARCHITECTURE_FIELDS = ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim",
                       "num_encoder_layers", "num_decoder_layers", "mlp_activations",
                       "logits_via_embedding", "relative_attention_num_buckets",
                       "relative_attention_max_distance")


def check_config(found, given: Optional[Any], *, source: str, found_in: str):
  """`given` when it describes the model `found` in the checkpoint, else an error
  naming each differing field (`found_in`: where `found` was read, e.g. config.json).

  The caller's run settings (dropout, dtype, matmul, remat) are kept. This
  importer writes unscanned layers (`layers_{i}`): `importers.import_checkpoint`
  stacks them for a config with `scan_layers=True`, and refuses it here."""
  if given is None:
    return found
  if type(given) is not type(found):
    raise CheckpointImportError(
        f"{source} holds a T5; the given config is a {type(given).__name__}.")
  differing = [f"{name}: {found_in} says {getattr(found, name)!r}, the given config "
               f"{getattr(given, name)!r}" for name in ARCHITECTURE_FIELDS
               if getattr(found, name) != getattr(given, name)]
  if differing:
    raise CheckpointImportError(
        f"{source} is another model than the given config:\n  " + "\n  ".join(differing))
  if getattr(given, "scan_layers", False):
    raise CheckpointImportError(
        f"scan_layers: the given config scans its layers; imports write one subtree per "
        f"layer (layers_{{i}}). Import {source} through importers.import_checkpoint, "
        "which stacks them.")
  return given
