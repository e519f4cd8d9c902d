"""Packed decode weights: a parameter tree rewritten once for fast decoder steps.

Every 2-D `kernel` becomes a `models.packed.PackedKernel` ([out, in], float32,
bfloat16 or int8; see that module for the formats and why), and a tied output
layer gets a packed copy of its embedding table (`attend_kernel`). The decoders
(`decoding.greedy_decode`, `sample_decode`, `beam_search`) take the result as
`step_params=`; the encoder keeps the plain weights. Training never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import flax.linen as nn
import jax

from prosocial_jax.models.packed import WEIGHT_FORMATS, pack_kernel, pack_rows

PyTree = Any

__all__ = ["WEIGHT_FORMATS", "pack_params"]


def pack_params(params: PyTree, weights: str, *,
                tied_output_embedding: Optional[str] = None) -> PyTree:
  """Every `kernel` leaf of `params` (boxed or not) as a `PackedKernel`; embeddings,
  norms and biases unchanged. Run it once per set of weights (e.g. inside the
  jitted decode function, before the loop).

  `tied_output_embedding`: the top-level module whose `embedding` is also the
  output layer (the model's `tied_output_embedding`, e.g. "token_embedder" for
  T5 v1.0; None when the output layer is its own kernel). Its packed copy is
  added as `attend_kernel` beside the table.
  """
  if weights not in WEIGHT_FORMATS:
    raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {weights!r}")

  def pack(path, leaf):
    name = getattr(path[-1], "key", None)
    return pack_kernel(leaf, weights) if name == "kernel" and leaf.ndim >= 2 else leaf
  packed = jax.tree_util.tree_map_with_path(pack, nn.unbox(params))
  if tied_output_embedding is not None:
    embedder = packed.get(tied_output_embedding)
    if not isinstance(embedder, Mapping) or "embedding" not in embedder:
      raise ValueError(f"tied_output_embedding={tied_output_embedding!r}: params have no "
                       f"'{tied_output_embedding}/embedding' (top level: {sorted(packed)})")
    if "attend_kernel" not in embedder:  # packing a packed tree changes nothing
      packed = dict(packed)
      packed[tied_output_embedding] = dict(
          embedder, attend_kernel=pack_rows(embedder["embedding"], weights))
  return packed
