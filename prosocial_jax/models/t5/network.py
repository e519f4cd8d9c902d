"""T5 encoder-decoder (v1.1 and v1.0, by config) with T5X parameter names.

Parameter tree (so public T5X checkpoints map one to one; with
`scan_layers=True` the `layers_{i}` subtrees become one `layers` subtree whose
leaves carry a [num_layers] axis at position 1, as T5X's scanned checkpoints:
query kernel [embed, layers, heads*head_dim], scale [embed, layers]):
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

from prosocial_jax.models import attention, blocks, encdec, layers, precision, stack
from prosocial_jax.models.t5.config import T5Config

Array = jax.Array


def _relpos(cfg: T5Config) -> layers.RelativePositionBiases:
  return layers.RelativePositionBiases(
      num_buckets=cfg.relative_attention_num_buckets,
      max_distance=cfg.relative_attention_max_distance,
      num_heads=cfg.num_heads, name="relpos_bias")


def _norm(cfg: T5Config, name: str) -> layers.RMSNorm:
  return layers.RMSNorm(dtype=cfg.activation_dtype, name=name)


def _dropout(cfg: T5Config, x, deterministic):
  # Same mask for every position of a row, as T5X (broadcast over length).
  return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(x, deterministic=deterministic)


class _Block(blocks.Block):
  """T5's parts: RMS norms, attention with the relative bias added, (gated) MLP block,
  dropout broadcast over the length."""
  config: T5Config

  NAMES = {"self_attention_norm": "pre_attention_layer_norm",
           "self_attention": "attention",  # encoder; the decoder's is below
           "cross_attention_norm": "pre_cross_attention_layer_norm",
           "cross_attention": "encoder_decoder_attention",
           "mlp_norm": "pre_mlp_layer_norm"}

  def norm(self, name):
    return _norm(self.config, name)

  def attention(self, name, cross_attention=False):
    cfg = self.config
    return attention.MultiHeadAttention(
        num_heads=cfg.num_heads, head_dim=cfg.head_dim, dtype=cfg.activation_dtype,
        dropout_rate=cfg.dropout_rate, cross_attention=cross_attention,
        dot_general=self.dot_general, attention_kernel=cfg.attention_kernel, name=name)

  def mlp(self, x):
    cfg = self.config
    return layers.MlpBlock(
        intermediate_dim=cfg.mlp_dim, activations=cfg.mlp_activations,
        dropout_rate=cfg.dropout_rate, dtype=cfg.activation_dtype,
        dot_general=self.dot_general, name="mlp")(x, deterministic=self.deterministic)

  def dropout(self, x, deterministic):
    return _dropout(self.config, x, deterministic)


class EncoderLayer(_Block):
  """Pre-norm self-attention block then pre-norm MLP block (`blocks.encoder_layer`)."""

  @nn.compact
  def __call__(self, inputs, mask, bias):
    return blocks.encoder_layer(self, inputs, mask, bias)


class DecoderLayer(_Block):
  """Self-attention, cross-attention over the encoder, MLP; each pre-normed."""
  NAMES = {**_Block.NAMES, "self_attention_norm": "pre_self_attention_layer_norm",
           "self_attention": "self_attention"}

  @nn.compact
  def __call__(self, inputs, encoded, self_mask, cross_mask, bias, decode_index=None):
    return blocks.decoder_layer(self, inputs, encoded, self_mask, cross_mask, bias,
                                decode_index)


class _Stack(nn.Module):
  config: T5Config
  dot_general: layers.DotGeneral = lax.dot_general
  shared_embedding: Optional[nn.Module] = None  # the token embedder


class Encoder(_Stack):
  """Embedding -> layers -> final norm."""

  @nn.compact
  def __call__(self, encoder_input_tokens, encoder_mask=None, encoder_positions=None, *,
               deterministic):
    del encoder_positions  # see the module docstring
    cfg = self.config
    length = encoder_input_tokens.shape[-1]
    positions = np.arange(length)
    bias = _relpos(cfg)(positions, positions, bidirectional=True)  # [1, heads, len, len]
    x = self.shared_embedding(encoder_input_tokens.astype(jnp.int32))
    x = _dropout(cfg, x, deterministic).astype(cfg.activation_dtype)  # [batch, len, embed]
    x = stack.run_layers(EncoderLayer, cfg, self.dot_general, cfg.num_encoder_layers,
                         x, encoder_mask, bias, deterministic=deterministic)
    x = _norm(cfg, "encoder_norm")(x)
    return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(_Stack):
  """Embedding -> layers -> final norm -> float32 logits (tied in v1.0, own kernel in v1.1).
  Decoding state (decode=True): see `encdec.EncoderDecoder.decode`."""

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
      decode_index = blocks.advance_decode_index(self, q_len, max_decode_length)
      if decode_index is not None:  # cached step: queries at index.., keys span the cache
        query_pos = decode_index + jnp.arange(q_len)
        key_pos = jnp.arange(max_decode_length)
    bias = _relpos(cfg)(query_pos, key_pos, bidirectional=False)  # [1, heads, q, k]

    y = self.shared_embedding(decoder_input_tokens.astype(jnp.int32))
    y = _dropout(cfg, y, deterministic).astype(cfg.activation_dtype)  # [batch, q, embed]
    y = stack.run_layers(DecoderLayer, cfg, self.dot_general, cfg.num_decoder_layers,
                         y, encoded, decoder_mask, encoder_decoder_mask, bias, decode_index,
                         deterministic=deterministic, decode=decode,
                         decode_length=max_decode_length)
    y = _norm(cfg, "decoder_norm")(y)
    y = _dropout(cfg, y, deterministic)

    operand_dtype = cfg.logits_operand_dtype  # logits are float32 either way
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
        num_embeddings=cfg.vocab_size, features=cfg.emb_dim, dtype=cfg.activation_dtype,
        one_hot=cfg.one_hot_embedding)
    self.encoder = Encoder(cfg, dot_general, shared_embedding=self.token_embedder)
    self.decoder = Decoder(cfg, dot_general, shared_embedding=self.token_embedder)
