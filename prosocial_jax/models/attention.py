"""Attention: masks, dot-product attention (plain, fused and over a KV cache), and
`MultiHeadAttention`, the self- and cross-attention block of T5 and Prost.

Like `layers`, no mesh code: activations name their logical axes.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from prosocial_jax.models import precision, reductions
from prosocial_jax.models.errors import ConfigError
from prosocial_jax.models.layers import (Array, DenseGeneral, DotGeneral, DType, Initializer,
                                         attention_kernel_init, constrain)

# Added to masked attention logits; finite so fully masked rows stay NaN-free.
_MASK_VALUE = -1e10


# ----------------------------------------------------------------------------
# Masks. All masks are boolean [batch, 1, q_len, k_len] (1 broadcasts over heads).
# ----------------------------------------------------------------------------
def make_attention_mask(query_input: Array, key_input: Array,
                        pairwise_fn: Callable[[Array, Array], Array] = jnp.logical_and) -> Array:
  """[batch, q], [batch, k] -> [batch, 1, q, k] = pairwise_fn(q_i, k_j)."""
  mask = pairwise_fn(query_input[..., :, None], key_input[..., None, :])
  return mask[..., None, :, :].astype(bool)


def make_padding_mask(query_tokens: Array, key_tokens: Array) -> Array:
  """Attend only between non-padding (id != 0) positions."""
  return make_attention_mask(query_tokens > 0, key_tokens > 0)


def make_segment_mask(query_segment_ids: Array, key_segment_ids: Array) -> Array:
  """Packed examples: attend only within the same segment."""
  return make_attention_mask(query_segment_ids, key_segment_ids, jnp.equal)


def make_causal_mask(length: int) -> Array:
  """[1, 1, length, length]: query i sees keys j <= i."""
  idx = jnp.arange(length)
  return make_attention_mask(idx[None], idx[None], jnp.greater_equal)


def combine_masks(*masks: Optional[Array]) -> Optional[Array]:
  """Logical AND of the non-None masks (broadcasting); None if none given."""
  masks = [m for m in masks if m is not None]
  return functools.reduce(jnp.logical_and, masks) if masks else None


def make_decoder_mask(decoder_target_tokens: Array,
                      decoder_segment_ids: Optional[Array] = None) -> Array:
  """Causal AND padding (from the targets) AND, when packed, same-segment."""
  segment = (None if decoder_segment_ids is None
             else make_segment_mask(decoder_segment_ids, decoder_segment_ids))
  return combine_masks(make_causal_mask(decoder_target_tokens.shape[-1]),
                       make_padding_mask(decoder_target_tokens, decoder_target_tokens),
                       segment)


@flax.struct.dataclass
class LengthsMask:
  """An unpacked batch's mask, dense and as lengths.

  `dense` is the boolean [batch, 1, q, k] mask the "xla" kernel adds to its logits.
  Unpacked batches are padded at the end (what the feature converters and the inference
  batchers produce; id 0 is padding and no tokenizer emits it), so the same mask is
  `q < query_lengths[b] and k < key_lengths[b]` (and `k <= q` when `causal`). The "cudnn"
  kernel takes it in that form: no mask tensor, and the position bias stays [1, h, q, k]
  (a mask would be merged into a [batch, h, q, k] bias, read forward and its gradient
  written backward in every layer; cuDNN computes that gradient only from 9.18 on).
  Packed batches keep a plain dense mask: segments are not lengths.
  """
  dense: Array
  query_lengths: Array  # [batch] int32
  key_lengths: Array    # [batch] int32
  causal: bool = flax.struct.field(pytree_node=False, default=False)


def _lengths(tokens: Array) -> Array:
  return jnp.sum(tokens > 0, axis=-1, dtype=jnp.int32)


def make_encoder_mask(encoder_input_tokens: Array,
                      encoder_segment_ids: Optional[Array] = None) -> Array | LengthsMask:
  """Encoder self-attention: padding AND, when packed, same-segment."""
  mask = make_padding_mask(encoder_input_tokens, encoder_input_tokens)
  if encoder_segment_ids is not None:
    return combine_masks(mask, make_segment_mask(encoder_segment_ids, encoder_segment_ids))
  lengths = _lengths(encoder_input_tokens)
  return LengthsMask(mask, lengths, lengths)


def make_decoder_masks(encoder_input_tokens: Array, decoder_input_tokens: Array,
                       decoder_target_tokens: Array, encoder_segment_ids: Optional[Array] = None,
                       decoder_segment_ids: Optional[Array] = None, *,
                       decode: bool) -> tuple[Optional[Array | LengthsMask], Array | LengthsMask]:
  """(decoder self-attention mask, encoder-decoder mask) of an encoder-decoder;
  `LengthsMask`s when unpacked and not decoding.

  With `decode=True` (cached, autoregressive) the self-attention mask is None
  (the cache makes it causal), every query is real, and packing is refused.
  """
  if decode:  # cached attention, on the "xla" kernel only
    if encoder_segment_ids is not None or decoder_segment_ids is not None:
      raise ValueError("Packed inputs (segment ids) are not supported with decode=True")
    query_valid = jnp.ones_like(decoder_input_tokens, dtype=bool)
    return None, make_attention_mask(query_valid, encoder_input_tokens > 0)
  decoder_mask = make_decoder_mask(decoder_target_tokens, decoder_segment_ids)
  cross_mask = make_padding_mask(decoder_target_tokens, encoder_input_tokens)
  if encoder_segment_ids is None and decoder_segment_ids is None:
    target_lengths = _lengths(decoder_target_tokens)
    return (LengthsMask(decoder_mask, target_lengths, target_lengths, causal=True),
            LengthsMask(cross_mask, target_lengths, _lengths(encoder_input_tokens)))
  if encoder_segment_ids is not None:
    if decoder_segment_ids is None:
      raise ValueError("encoder_segment_ids given without decoder_segment_ids")
    cross_mask = combine_masks(
        cross_mask, make_segment_mask(decoder_segment_ids, encoder_segment_ids))
  return decoder_mask, cross_mask


def dot_product_attention(query: Array, key: Array, value: Array, bias: Optional[Array], *,
                          dropout_rng: Optional[Array], dropout_rate: float,
                          deterministic: bool, dtype: DType,
                          einsum: Optional[Callable[..., Array]] = None) -> Array:
  """query [b, q, h, d], key/value [b, k, h, d], bias [b|1, h|1, q, k] -> [b, q, h, d].

  `einsum(spec, a, b, out_dtype)` (`precision.attention_einsum_for`), when given,
  takes both products with the operands as they are (bf16) and f32 accumulation;
  without it the logits' operands are cast to f32.
  """
  # Logits and softmax in fp32 whatever the activation dtype (bf16 overflows).
  if einsum is not None:
    logits = einsum("bqhd,bkhd->bhqk", query, key.astype(query.dtype), jnp.float32)
  else:
    logits = jnp.einsum("bqhd,bkhd->bhqk", query.astype(jnp.float32), key.astype(jnp.float32))
  if bias is not None:
    logits = logits + bias.astype(jnp.float32)
  weights = jax.nn.softmax(logits, axis=-1)
  if not deterministic and dropout_rate > 0.0:
    # Same dropout pattern for every query position (broadcast over q), as T5X.
    keep_shape = weights.shape[:-2] + (1,) + weights.shape[-1:]
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, keep_shape)
    weights = weights * keep / (1.0 - dropout_rate)
  if einsum is not None:
    return einsum("bhqk,bkhd->bqhd", weights.astype(value.dtype), value, jnp.dtype(dtype))
  return jnp.einsum("bhqk,bkhd->bqhd", weights.astype(dtype), value.astype(dtype))


# `attention_kernel` of the model configs: "xla" is `dot_product_attention` above (any
# backend); "cudnn" is cuDNN's fused flash attention (NVIDIA GPUs, bf16), which never
# writes the [batch, heads, q, k] logits and probabilities to memory.
ATTENTION_KERNELS = ("xla", "cudnn")
# `jax.nn.dot_product_attention`'s implementation behind "cudnn" (tests put its "xla"
# reference here to check the plumbing on a CPU).
FUSED_IMPLEMENTATION = "cudnn"


def check_attention_kernel(kernel: str, dtype: str, attention_dropout: float, *,
                           owner: str, dropout_field: str) -> None:
  """Config validation shared by the model families."""
  if kernel not in ATTENTION_KERNELS:
    raise ConfigError(f"{owner}.attention_kernel must be one of {ATTENTION_KERNELS}, "
                      f"got {kernel!r}")
  if kernel == "cudnn" and dtype != "bfloat16":
    raise ConfigError(f"{owner}.attention_kernel='cudnn' needs dtype='bfloat16' (cuDNN's "
                      f"flash attention takes bf16 or fp16), got {dtype!r}")
  if kernel == "cudnn" and attention_dropout > 0.0:
    raise ConfigError(f"{owner}.attention_kernel='cudnn' cannot drop attention weights: set "
                      f"{owner}.{dropout_field}=0 or attention_kernel='xla' (it is "
                      f"{attention_dropout})")


def fused_attention(query: Array, key: Array, value: Array,
                    mask: Optional[Array | LengthsMask], bias: Optional[Array], *,
                    dtype: DType) -> Array:
  """cuDNN's flash attention: query [b, q, h, d], key/value [b, k, h, d], mask a boolean
  [b|1, 1, q, k] or a `LengthsMask`, bias [1, h, q, k] -> [b, q, h, d]; no dropout.

  The logits are not scaled (T5 folds 1/sqrt(head_dim) into the query's initialiser,
  Prost scales the query before), the bias is added in the query's dtype (bf16, as
  T5X's logits), softmax and accumulation are float32 inside the kernel.
  """
  backend = jax.default_backend()
  if FUSED_IMPLEMENTATION == "cudnn" and backend != "gpu":
    raise ConfigError(f"attention_kernel='cudnn' runs on NVIDIA GPUs; this job's backend is "
                      f"{backend!r}: use attention_kernel='xla'")
  lengths = {}
  if isinstance(mask, LengthsMask):
    # At least one key per example: an all-padding example (a filler row of an eval
    # batch) must not make cuDNN divide by an empty softmax.
    lengths = dict(query_seq_lengths=jnp.maximum(mask.query_lengths, 1),
                   key_value_seq_lengths=jnp.maximum(mask.key_lengths, 1),
                   is_causal=mask.causal)
    query_lengths, mask = mask.query_lengths, None
  out = jax.nn.dot_product_attention(
      query, key.astype(query.dtype), value.astype(query.dtype),
      bias=None if bias is None else bias.astype(query.dtype), mask=mask, scale=1.0,
      implementation=FUSED_IMPLEMENTATION, **lengths)
  if lengths:
    # Padding queries attend to nothing; zero them whatever the kernel left there, so
    # that no stale value reaches a later layer (they never reach the loss).
    real = jnp.arange(query.shape[1])[None, :] < query_lengths[:, None]
    out = jnp.where(real[:, :, None, None], out, jnp.zeros((), out.dtype))
  return out.astype(dtype)


def _key_cache_layout(key: Array) -> Array:
  return jnp.transpose(key, (0, 2, 3, 1))  # [b, k, h, d] -> [b, h, d, k]


def _value_cache_layout(value: Array) -> Array:
  return jnp.transpose(value, (0, 2, 1, 3))  # [b, k, h, d] -> [b, h, k, d]


def cached_attention(query: Array, key_t: Array, value_t: Array, bias: Optional[Array], *,
                     dtype: DType) -> Array:
  """Attention over a KV cache: query [b, q, h, d], key_t [b, h, d, k], value_t
  [b, h, k, d], bias [b|1, h|1, q, k] -> [b, q, h, d].

  Both matmuls take their operands in standard layouts (no per-step transpose of
  the cache) and accumulate in float32; logits and softmax are float32.
  """
  q = jnp.swapaxes(query, 1, 2).astype(key_t.dtype)                    # [b, h, q, d]
  logits = jnp.matmul(q, key_t, preferred_element_type=jnp.float32)     # [b, h, q, k]
  if bias is not None:
    logits = logits + bias.astype(jnp.float32)
  weights = jax.nn.softmax(logits, axis=-1).astype(value_t.dtype)
  out = jnp.matmul(weights, value_t, preferred_element_type=jnp.float32)  # [b, h, q, d]
  return jnp.swapaxes(out, 1, 2).astype(dtype)


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention (self or cross) with an optional KV cache.

  T5 does not scale logits by 1/sqrt(head_dim) at run time: the factor is folded
  into the query initialiser (as in T5X), so checkpoints load unchanged.
  `query_scale` instead multiplies the projected query at run time (Prost /
  BlenderBot: 1/sqrt(head_dim), after the bias).

  Decoding (`decode=True`) keeps its state in the `cache` collection, in the
  layouts the two attention matmuls read directly (no per-step transposes):
  `cached_key` [batch, heads, head_dim, length], `cached_value` [batch, heads,
  length, head_dim].
  * self-attention: length = decode_length; each call writes its keys at
    `decode_index` and attends causally over the cache.
  * cross-attention (`cross_attention=True`): length = the encoder length; the
    projected encoder keys/values, computed once and reused at every step.
  The first decode call (no cache yet) only creates the cache and runs plain
  attention over its inputs; its output is meant to be discarded. Cached
  attention is deterministic (decoding never uses dropout).
  """
  num_heads: int
  head_dim: int
  dtype: DType = jnp.float32
  dropout_rate: float = 0.0
  kernel_init: Initializer = attention_kernel_init
  cross_attention: bool = False
  dot_general: DotGeneral = lax.dot_general
  use_bias: bool = False
  query_scale: Optional[float] = None
  attention_kernel: str = "xla"  # ATTENTION_KERNELS; decode=True calls always use "xla"
  # Parameter names of the query, key, value and output projections.
  names: tuple[str, str, str, str] = ("query", "key", "value", "out")

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array, mask: Optional[Array] = None,
               bias: Optional[Array] = None, *, deterministic: bool, decode: bool = False,
               decode_index: Optional[Array] = None,
               decode_length: Optional[int] = None) -> Array:
    """`mask`: a boolean [batch|1, 1, q_len, k_len], a `LengthsMask` or None."""
    q_name, k_name, v_name, out_name = self.names
    fused_mask = mask  # the "cudnn" kernel takes a LengthsMask as lengths
    if isinstance(mask, LengthsMask):
      mask = mask.dense
    project = functools.partial(
        DenseGeneral, features=(self.num_heads, self.head_dim), kernel_axes=("embed", "joined_kv"),
        dtype=self.dtype, dot_general=self.dot_general, use_bias=self.use_bias)
    if self.query_scale is None:  # T5: 1/sqrt(head_dim) lives in the initialiser
      query_init = lambda *a: self.kernel_init(*a) / np.sqrt(self.head_dim).astype(np.float32)
    else:
      query_init = self.kernel_init
    qkv_axes = ("batch", "length", "heads", "kv")

    query = project(kernel_init=query_init, name=q_name)(inputs_q)
    if self.query_scale is not None:
      query = query * jnp.asarray(self.query_scale, query.dtype)
    query = constrain(query, qkv_axes)
    cache_ready = decode and self.has_variable("cache", "cached_key")
    if self.cross_attention and cache_ready:
      key, value = None, None  # read below; the encoder projections are reused
    else:
      key = constrain(project(kernel_init=self.kernel_init, name=k_name)(inputs_kv), qkv_axes)
      value = constrain(project(kernel_init=self.kernel_init, name=v_name)(inputs_kv), qkv_axes)

    key_t = value_t = None  # the cache layouts, when attending over a cache
    if decode and self.cross_attention:
      cached_key = self.variable("cache", "cached_key", lambda: _key_cache_layout(key))
      cached_value = self.variable("cache", "cached_value", lambda: _value_cache_layout(value))
      key_t, value_t = cached_key.value, cached_value.value
    elif decode:
      if decode_length is None:
        raise ValueError("decode=True self-attention needs decode_length (the cache length)")
      batch, q_len = query.shape[:2]
      key_shape = (batch, self.num_heads, self.head_dim, decode_length)
      value_shape = (batch, self.num_heads, decode_length, self.head_dim)
      cached_key = self.variable("cache", "cached_key", jnp.zeros, key_shape, key.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros, value_shape, value.dtype)
      if cache_ready:
        if decode_index is None:
          raise ValueError("cached self-attention needs decode_index")
        key_t = lax.dynamic_update_slice(
            cached_key.value, _key_cache_layout(key).astype(cached_key.value.dtype),
            (0, 0, 0, decode_index))
        value_t = lax.dynamic_update_slice(
            cached_value.value, _value_cache_layout(value).astype(cached_value.value.dtype),
            (0, 0, decode_index, 0))
        cached_key.value, cached_value.value = key_t, value_t
        # Only keys already written, and causal within this call's q_len tokens.
        query_pos = decode_index + jnp.arange(q_len)
        causal = jnp.arange(decode_length)[None, :] <= query_pos[:, None]  # [q, cache]
        mask = combine_masks(mask, causal[None, None])

    # The fused kernel serves whole sequences; the call that creates a decode cache runs
    # one dummy token, whose output is discarded, so it keeps the plain kernel too.
    if self.attention_kernel == "cudnn" and not decode:
      x = fused_attention(query, key, value, fused_mask, bias, dtype=self.dtype)
    else:
      x = self._attend(query, key, value, key_t, value_t, mask, bias, deterministic)
    out = DenseGeneral(inputs_q.shape[-1], axis=(-2, -1), kernel_axes=("joined_kv", "embed"),
                       kernel_init=self.kernel_init, dtype=self.dtype,
                       dot_general=self.dot_general, use_bias=self.use_bias, name=out_name)(x)
    return constrain(out, ("batch", "length", "embed"))  # [batch, q_len, embed]

  def _attend(self, query, key, value, key_t, value_t, mask, bias, deterministic) -> Array:
    """The "xla" kernel, plain or over the cache -> [batch, q_len, heads, head_dim]."""
    attention_bias = None
    if mask is not None:
      attention_bias = jnp.where(mask, 0.0, _MASK_VALUE).astype(jnp.float32)
    if bias is not None:
      if bias.shape[0] == 1 and query.shape[0] > 1:  # one position bias for the batch:
        bias = reductions.broadcast_leading(bias, query.shape[0])  # its gradient sums it
      attention_bias = bias if attention_bias is None else attention_bias + bias
    if key_t is not None:
      return cached_attention(query, key_t, value_t, attention_bias, dtype=self.dtype)
    dropout_rng = None
    if not deterministic and self.dropout_rate > 0.0:
      dropout_rng = self.make_rng("dropout")
    return dot_product_attention(query, key, value, attention_bias, dropout_rng=dropout_rng,
                                 dropout_rate=self.dropout_rate, deterministic=deterministic,
                                 dtype=self.dtype,
                                 einsum=precision.attention_einsum_for(self.dot_general))
