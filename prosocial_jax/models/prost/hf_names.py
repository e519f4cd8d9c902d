"""Prost parameter path <-> Hugging Face `BlenderbotForConditionalGeneration` key.

The whole mapping is this rule (see `prost.network` for the tree):
  "model." + path with "/" -> "." and "layers_{i}" -> "layers.{i}", leaf renamed
  kernel -> weight (TRANSPOSED: ours [in, out], torch [out, in]),
  scale -> weight, embedding -> weight, bias -> bias.
HF keys with no parameter here: `model.{encoder,decoder}.embed_tokens.weight` and
`lm_head.weight` (copies of `model.shared.weight`: tied), and the zero buffer
`final_logits_bias` [1, vocab].
"""

from __future__ import annotations

ZERO_BUFFERS = ("final_logits_bias",)

_LEAF_TO_HF = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}


def hf_key(path: str) -> str:
  """Our path -> HF key, e.g. 'decoder/layers_3/self_attn/q_proj/kernel' ->
  'model.decoder.layers.3.self_attn.q_proj.weight' (a transposed tensor)."""
  *modules, leaf = path.split("/")
  if leaf not in _LEAF_TO_HF:
    raise ValueError(f"Not a Prost parameter path: {path!r}")
  modules = [m.replace("layers_", "layers.", 1) if m.startswith("layers_") else m
             for m in modules]
  return "model." + ".".join(modules + [_LEAF_TO_HF[leaf]])


def is_transposed(path: str) -> bool:
  """True where the HF tensor is the transpose of ours (every 2-D projection kernel)."""
  return path.endswith("/kernel")
