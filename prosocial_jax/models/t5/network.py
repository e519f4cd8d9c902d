"""T5 encoder-decoder (v1.1 and v1.0, by config) with T5X parameter names.

Parameter tree (so public T5X checkpoints map one to one; with
`scan_layers=True` the `layers_{i}` subtrees become one `layers` subtree whose
leaves carry a leading [num_layers] axis, as T5X's scanned checkpoints):
  token_embedder/embedding                          [vocab, embed]
  encoder/relpos_bias/rel_embedding                 [heads, buckets]  (shared by all layers)
  encoder/layers_{i}/pre_attention_layer_norm/scale [embed]
  encoder/layers_{i}/attention/{query,key,value}/kernel [embed, heads*head_dim]
  encoder/layers_{i}/attention/out/kernel           [heads*head_dim, embed]
  encoder/layers_{i}/pre_mlp_layer_norm/scale, mlp/{wi_0,wi_1,wo}/kernel
  encoder/encoder_norm/scale
  decoder/relpos_bias/rel_embedding
  decoder/layers_{i}/{pre_self_attention_layer_norm, self_attention,
                      pre_cross_attention_layer_norm, encoder_decoder_attention,
                      pre_mlp_layer_norm, mlp}
  decoder/decoder_norm/scale
  decoder/logits_dense/kernel                       [embed, vocab]  (unless tied)

Packing: segment ids enter the attention masks. Relative positions are taken
from the index in the packed row; within a segment that equals the difference
of the per-segment positions, and cross-segment pairs are masked, so T5 needs
no `*_positions` (they are accepted for the shared call signature).
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from prosocial_jax.models import encdec, layers, precision, stack
from prosocial_jax.models.t5.config import T5Config

Array = jax.Array


def _relpos(cfg: T5Config) -> layers.RelativePositionBiases:
  return layers.RelativePositionBiases(
      num_buckets=cfg.relative_attention_num_buckets,
      max_distance=cfg.relative_attention_max_distance,
      num_heads=cfg.num_heads, name="relpos_bias")


class _Block(nn.Module):
  """Shared plumbing: norms, attention, MLP and broadcast dropout of one config."""
  config: T5Config
  dot_general: layers.DotGeneral = lax.dot_general
  scanned: bool = False  # inside `stack.run_layers`' scan: return (output, None)

  def norm(self, name):
    return layers.RMSNorm(dtype=self.config.activation_dtype, name=name)

  def attention(self, name, cross_attention=False):
    cfg = self.config
    return layers.MultiHeadAttention(
        num_heads=cfg.num_heads, head_dim=cfg.head_dim, dtype=cfg.activation_dtype,
        dropout_rate=cfg.dropout_rate, cross_attention=cross_attention,
        dot_general=self.dot_general, name=name)

  def mlp(self, x, deterministic):
    cfg = self.config
    return layers.MlpBlock(
        intermediate_dim=cfg.mlp_dim, activations=cfg.mlp_activations,
        dropout_rate=cfg.dropout_rate, dtype=cfg.activation_dtype,
        dot_general=self.dot_general, name="mlp")(x, deterministic=deterministic)

  def dropout(self, x, deterministic):
    # Same mask for every position of a row, as T5X (broadcast over length).
    return nn.Dropout(self.config.dropout_rate, broadcast_dims=(-2,))(
        x, deterministic=deterministic)


class EncoderLayer(_Block):
  """Pre-norm self-attention block then pre-norm MLP block."""
  STATIC_ARGNUMS = (4,)  # `deterministic` (counting self as 0), for remat

  @nn.compact
  def __call__(self, inputs, mask, bias, deterministic):
    # inputs: [batch, length, embed]
    x = self.norm("pre_attention_layer_norm")(inputs)
    x = self.attention("attention")(x, x, mask, bias, deterministic=deterministic)
    x = inputs + self.dropout(x, deterministic)
    y = self.mlp(self.norm("pre_mlp_layer_norm")(x), deterministic)
    y = x + self.dropout(y, deterministic)
    y = nn.with_logical_constraint(y, ("batch", "length", "embed"))
    return (y, None) if self.scanned else y


class DecoderLayer(_Block):
  """Self-attention, cross-attention over the encoder, MLP; each pre-normed."""
  STATIC_ARGNUMS = (6, 7, 9)  # deterministic, decode, decode_length

  @nn.compact
  def __call__(self, inputs, encoded, self_mask, cross_mask, bias, deterministic,
               decode=False, decode_index=None, decode_length=None):
    # inputs: [batch, target_len, embed]; encoded: [batch, input_len, embed]
    x = self.norm("pre_self_attention_layer_norm")(inputs)
    x = self.attention("self_attention")(
        x, x, self_mask, bias, deterministic=deterministic, decode=decode,
        decode_index=decode_index, decode_length=decode_length)
    x = inputs + self.dropout(x, deterministic)
    y = self.norm("pre_cross_attention_layer_norm")(x)
    y = self.attention("encoder_decoder_attention", cross_attention=True)(
        y, encoded, cross_mask, deterministic=deterministic, decode=decode)
    y = x + self.dropout(y, deterministic)
    z = self.mlp(self.norm("pre_mlp_layer_norm")(y), deterministic)
    z = y + self.dropout(z, deterministic)
    z = nn.with_logical_constraint(z, ("batch", "length", "embed"))
    return (z, None) if self.scanned else z


class Encoder(_Block):
  """Embedding -> layers -> final norm. `shared_embedding` is the token embedder."""
  shared_embedding: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, encoder_input_tokens, encoder_mask=None, encoder_positions=None, *,
               deterministic):
    del encoder_positions  # see the module docstring
    cfg = self.config
    length = encoder_input_tokens.shape[-1]
    positions = np.arange(length)
    bias = _relpos(cfg)(positions, positions, bidirectional=True)  # [1, heads, len, len]
    x = self.shared_embedding(encoder_input_tokens.astype(jnp.int32))
    x = self.dropout(x, deterministic).astype(cfg.activation_dtype)  # [batch, len, embed]
    x = stack.run_layers(EncoderLayer, cfg, self.dot_general, cfg.num_encoder_layers,
                         x, encoder_mask, bias, deterministic,
                         static_argnums=EncoderLayer.STATIC_ARGNUMS)
    x = self.norm("encoder_norm")(x)
    return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(_Block):
  """Embedding -> layers -> final norm -> logits (float32).

  With `decode=True` the decoder keeps `cache/decode_index` (the position of the
  next token) and every layer's KV cache; see `layers.MultiHeadAttention`.
  """
  shared_embedding: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, encoded, decoder_input_tokens, decoder_positions=None, decoder_mask=None,
               encoder_decoder_mask=None, *, deterministic, decode=False,
               max_decode_length=None):
    del decoder_positions  # see the module docstring
    cfg = self.config
    q_len = decoder_input_tokens.shape[-1]
    query_pos = key_pos = np.arange(q_len)
    decode_index = None
    if decode:
      if max_decode_length is None:
        raise ValueError("decode=True needs max_decode_length (the KV cache length)")
      cache_ready = self.has_variable("cache", "decode_index")
      index = self.variable("cache", "decode_index", lambda: jnp.zeros((), jnp.int32))
      if cache_ready:  # cached step: queries at index.., keys span the whole cache
        decode_index = index.value
        query_pos = decode_index + jnp.arange(q_len)
        key_pos = jnp.arange(max_decode_length)
        index.value = decode_index + q_len
    bias = _relpos(cfg)(query_pos, key_pos, bidirectional=False)  # [1, heads, q, k]

    y = self.shared_embedding(decoder_input_tokens.astype(jnp.int32))
    y = self.dropout(y, deterministic).astype(cfg.activation_dtype)  # [batch, q, embed]
    y = stack.run_layers(DecoderLayer, cfg, self.dot_general, cfg.num_decoder_layers,
                         y, encoded, decoder_mask, encoder_decoder_mask, bias, deterministic,
                         decode, decode_index, max_decode_length,
                         static_argnums=DecoderLayer.STATIC_ARGNUMS)
    y = self.norm("decoder_norm")(y)
    y = self.dropout(y, deterministic)

    # Logits are float32. Operands too, unless the matmul accumulates bf16 in float32.
    operand_dtype = cfg.activation_dtype if cfg.matmul == "bf16_fast" else jnp.float32
    if cfg.logits_via_embedding:
      # Tied output layer: rescale so logits keep unit-ish variance (T5 v1.0).
      logits = self.shared_embedding.attend(y, dtype=operand_dtype, dot_general=self.dot_general)
      logits = logits / np.sqrt(y.shape[-1]).astype(np.float32)
    else:
      logits = layers.DenseGeneral(
          cfg.vocab_size, kernel_axes=("embed", "vocab"), dtype=operand_dtype,
          output_dtype=jnp.float32, dot_general=self.dot_general, name="logits_dense")(y)
    return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


class Transformer(encdec.EncoderDecoder):
  """The T5 encoder-decoder; `encode` / `decode` / `__call__` as `encdec.EncoderDecoder`
  (`__call__` returns float32 logits [batch, target_len, vocab])."""
  config: T5Config
  # Matmul used by every projection; None: the config's `matmul` (precision.MATMULS).
  dot_general: Optional[layers.DotGeneral] = None

  @property
  def tied_output_embedding(self):
    return "token_embedder" if self.config.logits_via_embedding else None

  def setup(self):
    cfg = self.config
    dot_general = precision.dot_general_for(cfg.matmul, self.dot_general)
    self.token_embedder = layers.Embed(
        num_embeddings=cfg.vocab_size, features=cfg.emb_dim, dtype=cfg.activation_dtype)
    self.encoder = Encoder(cfg, dot_general, shared_embedding=self.token_embedder)
    self.decoder = Decoder(cfg, dot_general, shared_embedding=self.token_embedder)
