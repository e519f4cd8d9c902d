"""What the families' layers share: the pre-norm layer skeletons and the decode index.

T5 and Prost build the same two layers — a pre-norm self-attention sub-block
then a pre-norm MLP sub-block (encoder), with a pre-norm cross-attention
sub-block between them (decoder), each added back through dropout — and differ
only in their parts (RMS vs layer norm, relative bias vs none, gated vs plain
MLP) and parameter names. A family's layer derives from `Block`, supplies
`norm` / `attention` / `mlp` / `dropout` and its `NAMES`, and calls
`encoder_layer` or `decoder_layer` from its compact `__call__`.

Python values a layer needs (`deterministic`, `decode`, `decode_length`) are
module fields, not call arguments, so rematerialisation and scan never have to
be told which positional arguments are static (`stack.run_layers`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
DotGeneral = Any

# Sub-module names of a family's layers, by role.
NAME_ROLES = ("self_attention_norm", "self_attention", "cross_attention_norm",
              "cross_attention", "mlp_norm")


class Block(nn.Module):
  """A family's layer plumbing: parts built from one config, plus the static settings."""
  config: Any
  dot_general: DotGeneral = lax.dot_general
  scanned: bool = False             # inside `stack.run_layers`' scan: return (output, None)
  deterministic: bool = True        # no dropout
  decode: bool = False              # autoregressive step over the KV cache
  decode_length: Optional[int] = None  # the KV cache's length when decoding

  NAMES: ClassVar[Mapping[str, str]] = {}

  def norm(self, name: str) -> nn.Module:
    raise NotImplementedError

  def attention(self, name: str, cross_attention: bool = False) -> nn.Module:
    raise NotImplementedError

  def mlp(self, x: Array) -> Array:
    raise NotImplementedError

  def dropout(self, x: Array, deterministic: bool) -> Array:
    raise NotImplementedError

  def finish(self, y: Array):
    y = nn.with_logical_constraint(y, ("batch", "length", "embed"))
    return (y, None) if self.scanned else y


def _residual(layer: Block, x: Array, sublayer_output: Array) -> Array:
  return x + layer.dropout(sublayer_output, layer.deterministic)


def encoder_layer(layer: Block, inputs: Array, mask: Optional[Array],
                  bias: Optional[Array] = None):
  """Pre-norm self-attention, then pre-norm MLP. inputs [batch, length, embed]."""
  names = layer.NAMES
  x = layer.norm(names["self_attention_norm"])(inputs)
  x = layer.attention(names["self_attention"])(x, x, mask, bias,
                                               deterministic=layer.deterministic)
  x = _residual(layer, inputs, x)
  y = layer.mlp(layer.norm(names["mlp_norm"])(x))
  return layer.finish(_residual(layer, x, y))


def decoder_layer(layer: Block, inputs: Array, encoded: Array, self_mask: Optional[Array],
                  cross_mask: Optional[Array], bias: Optional[Array] = None,
                  decode_index: Optional[Array] = None):
  """Self-attention, cross-attention over `encoded` [batch, input_len, embed], MLP;
  each pre-normed. inputs [batch, target_len, embed]."""
  names = layer.NAMES
  x = layer.norm(names["self_attention_norm"])(inputs)
  x = layer.attention(names["self_attention"])(
      x, x, self_mask, bias, deterministic=layer.deterministic, decode=layer.decode,
      decode_index=decode_index, decode_length=layer.decode_length)
  x = _residual(layer, inputs, x)
  y = layer.norm(names["cross_attention_norm"])(x)
  y = layer.attention(names["cross_attention"], cross_attention=True)(
      y, encoded, cross_mask, deterministic=layer.deterministic, decode=layer.decode)
  y = _residual(layer, x, y)
  z = layer.mlp(layer.norm(names["mlp_norm"])(y))
  return layer.finish(_residual(layer, y, z))


def advance_decode_index(module: nn.Module, length: int,
                         max_decode_length: Optional[int]) -> Optional[Array]:
  """In a decoder's compact `__call__` with decode=True: the position of the first of
  `length` new tokens, then moves `cache/decode_index` past them.

  None on the call that creates the cache (see `inference.decoding.init_decode_cache`),
  whose index stays at 0.
  """
  if max_decode_length is None:
    raise ValueError("decode=True needs max_decode_length (the KV cache length)")
  cache_ready = module.has_variable("cache", "decode_index")
  index = module.variable("cache", "decode_index", lambda: jnp.zeros((), jnp.int32))
  if not cache_ready:
    return None
  position = index.value
  index.value = position + length
  return position
