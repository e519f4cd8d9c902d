"""Prost: the PushShift / BlenderBot encoder-decoder, with Hugging Face Blenderbot names.

Parameter tree. Names mirror `BlenderbotForConditionalGeneration`'s state dict
so an importer / exporter is one rule: HF key = "model." + our path with "/"
-> ".", "layers_{i}" -> "layers.{i}", and the leaf renamed
(kernel -> weight, TRANSPOSED: ours [in, out], torch's [out, in];
scale -> weight; bias -> bias; embedding -> weight). Shapes are otherwise HF's.

  shared/embedding                                  [vocab, embed]  model.shared.weight
                                                    (also lm_head.weight: tied)
  encoder/embed_positions/embedding                 [max_positions, embed]
  encoder/layers_{i}/self_attn_layer_norm/{scale,bias}                [embed]
  encoder/layers_{i}/self_attn/{q_proj,k_proj,v_proj}/kernel          [embed, heads*head_dim]
  encoder/layers_{i}/self_attn/{q_proj,k_proj,v_proj}/bias            [heads*head_dim]
  encoder/layers_{i}/self_attn/out_proj/{kernel,bias}           [heads*head_dim, embed], [embed]
  encoder/layers_{i}/final_layer_norm/{scale,bias}                    [embed]
  encoder/layers_{i}/fc1/{kernel,bias}                                [embed, mlp], [mlp]
  encoder/layers_{i}/fc2/{kernel,bias}                                [mlp, embed], [embed]
  encoder/layer_norm/{scale,bias}                                     [embed]
  decoder/embed_positions/embedding
  decoder/layers_{i}/{self_attn_layer_norm, self_attn, encoder_attn_layer_norm,
                      encoder_attn, final_layer_norm, fc1, fc2}
  decoder/layer_norm/{scale,bias}

HF's `final_logits_bias` is a zero buffer, not a parameter; an exporter writes
zeros [1, vocab]. `hf_names.hf_key` is the rule in code. ParlAI's names differ
but map one to one on the same shapes (as HF's conversion script does):
embeddings -> shared, position_embeddings -> embed_positions,
{attention, self_attention} -> self_attn, encoder_attention -> encoder_attn,
q_lin/k_lin/v_lin/out_lin -> q_proj/k_proj/v_proj/out_proj, ffn.lin1/2 -> fc1/2,
encoder norm1/norm2 -> self_attn_layer_norm/final_layer_norm, decoder
norm1/norm2/norm3 -> self_attn_layer_norm/encoder_attn_layer_norm/final_layer_norm,
norm_embeddings -> layer_norm (the final norm of the prelayernorm variant).

Positions: `encoder_positions` / `decoder_positions` when packed, else 0..len-1
(as HF and ParlAI: padding does not shift them); in cached decoding the decode
index. No sequence may exceed `max_positions`.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from prosocial_jax.models import attention, blocks, encdec, layers, precision, stack
from prosocial_jax.models.prost.config import ProstConfig

Array = jax.Array

# ParlAI's initialisers: embeddings N(0, emb_dim^-0.5), Xavier for the projections.
_attention_init = nn.initializers.xavier_normal()
_mlp_init = nn.initializers.xavier_uniform()


def _embedding_init(emb_dim: int):
  return nn.initializers.normal(stddev=emb_dim ** -0.5)


def _layer_norm(cfg: ProstConfig, name: str) -> layers.LayerNorm:
  return layers.LayerNorm(epsilon=cfg.layer_norm_epsilon, dtype=cfg.activation_dtype, name=name)


def _dropout(cfg: ProstConfig, x, deterministic):
  return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class _Block(blocks.Block):
  """Prost's parts: layer norms, biased attention with a run-time query scale, fc1/fc2."""
  config: ProstConfig

  NAMES = {"self_attention_norm": "self_attn_layer_norm", "self_attention": "self_attn",
           "cross_attention_norm": "encoder_attn_layer_norm", "cross_attention": "encoder_attn",
           "mlp_norm": "final_layer_norm"}

  def norm(self, name):
    return _layer_norm(self.config, name)

  def attention(self, name, cross_attention=False):
    cfg = self.config
    return attention.MultiHeadAttention(
        num_heads=cfg.num_heads, head_dim=cfg.head_dim, dtype=cfg.activation_dtype,
        dropout_rate=cfg.attention_dropout_rate, kernel_init=_attention_init,
        cross_attention=cross_attention, dot_general=self.dot_general, use_bias=True,
        query_scale=cfg.head_dim ** -0.5, names=("q_proj", "k_proj", "v_proj", "out_proj"),
        attention_kernel=cfg.attention_kernel, name=name)

  def mlp(self, x):
    # fc1 / fc2 sit directly in the layer (HF layout): a MlpBlock named by its
    # projections would add a level, so build the two projections here.
    cfg = self.config
    dense = lambda features, axes, name: layers.DenseGeneral(
        features, kernel_axes=axes, kernel_init=_mlp_init, dtype=cfg.activation_dtype,
        dot_general=self.dot_general, use_bias=True, name=name)
    h = layers.activation(cfg.activation)(dense(cfg.mlp_dim, ("embed", "mlp"), "fc1")(x))
    h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
    return dense(x.shape[-1], ("mlp", "embed"), "fc2")(h)

  def dropout(self, x, deterministic):
    return _dropout(self.config, x, deterministic)


class EncoderLayer(_Block):
  """Pre-layer-norm self-attention, then pre-layer-norm MLP (`blocks.encoder_layer`)."""

  @nn.compact
  def __call__(self, inputs, mask):
    return blocks.encoder_layer(self, inputs, mask)


class DecoderLayer(_Block):
  """Self-attention, cross-attention over the encoder, MLP; each pre-layer-normed."""

  @nn.compact
  def __call__(self, inputs, encoded, self_mask, cross_mask, decode_index=None):
    return blocks.decoder_layer(self, inputs, encoded, self_mask, cross_mask,
                                decode_index=decode_index)


class _Stack(nn.Module):
  """Token + learned position embeddings, shared by the encoder and the decoder."""
  config: ProstConfig
  dot_general: layers.DotGeneral = lax.dot_general
  shared_embedding: Optional[nn.Module] = None

  def embed(self, tokens, positions, deterministic):
    cfg = self.config
    length = tokens.shape[-1]
    if length > cfg.max_positions:
      raise ValueError(f"Prost has {cfg.max_positions} learned positions; got a sequence of "
                       f"{length} tokens (truncate inputs / targets to {cfg.max_positions})")
    x = self.shared_embedding(tokens.astype(jnp.int32))
    if cfg.scale_embedding:
      x = x * jnp.asarray(np.sqrt(cfg.emb_dim), x.dtype)
    pos = layers.Embed(num_embeddings=cfg.max_positions, features=cfg.emb_dim,
                       dtype=cfg.activation_dtype, axes=("abspos_buckets", "embed"),
                       embedding_init=_embedding_init(cfg.emb_dim),
                       one_hot=cfg.one_hot_embedding, name="embed_positions")
    x = x + pos(jnp.broadcast_to(positions, tokens.shape).astype(jnp.int32))
    return _dropout(cfg, x, deterministic).astype(cfg.activation_dtype)  # [batch, len, embed]


class Encoder(_Stack):
  """Embeddings -> layers -> final layer norm."""

  @nn.compact
  def __call__(self, encoder_input_tokens, encoder_mask=None, encoder_positions=None, *,
               deterministic):
    cfg = self.config
    if encoder_positions is None:
      encoder_positions = jnp.arange(encoder_input_tokens.shape[-1])
    x = self.embed(encoder_input_tokens, encoder_positions, deterministic)
    x = stack.run_layers(EncoderLayer, cfg, self.dot_general, cfg.num_encoder_layers,
                         x, encoder_mask, deterministic=deterministic)
    return _layer_norm(cfg, "layer_norm")(x)


class Decoder(_Stack):
  """Embeddings -> layers -> final layer norm -> tied output layer (float32 logits).
  Decoding state (decode=True): see `encdec.EncoderDecoder.decode`."""

  @nn.compact
  def __call__(self, encoded, decoder_input_tokens, decoder_positions=None, decoder_mask=None,
               encoder_decoder_mask=None, *, deterministic, decode=False,
               max_decode_length=None):
    cfg = self.config
    q_len = decoder_input_tokens.shape[-1]
    decode_index = None
    if decode:
      if max_decode_length is not None and max_decode_length > cfg.max_positions:
        raise ValueError(f"max_decode_length {max_decode_length} exceeds Prost's "
                         f"{cfg.max_positions} learned positions")
      decode_index = blocks.advance_decode_index(self, q_len, max_decode_length)
      if decode_index is not None:
        decoder_positions = decode_index + jnp.arange(q_len)
    if decoder_positions is None:
      decoder_positions = jnp.arange(q_len)
    y = self.embed(decoder_input_tokens, decoder_positions, deterministic)
    y = stack.run_layers(DecoderLayer, cfg, self.dot_general, cfg.num_decoder_layers,
                         y, encoded, decoder_mask, encoder_decoder_mask, decode_index,
                         deterministic=deterministic, decode=decode,
                         decode_length=max_decode_length)
    y = _layer_norm(cfg, "layer_norm")(y)
    # Tied, unscaled output layer; float32 logits (bf16 operands only with bf16_fast).
    logits = self.shared_embedding.attend(y, dtype=cfg.logits_operand_dtype,
                                          dot_general=self.dot_general)
    return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


class Transformer(encdec.EncoderDecoder):
  """The Prost encoder-decoder; `encode` / `decode` / `__call__` as `encdec.EncoderDecoder`."""
  config: ProstConfig
  # Matmul used by every projection; None: the config's `matmul` (precision.MATMULS).
  dot_general: Optional[layers.DotGeneral] = None

  # The output layer is always the shared embedding (BlenderBot ties them).
  tied_output_embedding = "shared"

  def setup(self):
    cfg = self.config
    dot_general = precision.dot_general_for(cfg.matmul, self.dot_general)
    self.shared = layers.Embed(num_embeddings=cfg.vocab_size, features=cfg.emb_dim,
                               dtype=cfg.activation_dtype,
                               embedding_init=_embedding_init(cfg.emb_dim),
                               one_hot=cfg.one_hot_embedding)
    self.encoder = Encoder(cfg, dot_general, shared_embedding=self.shared)
    self.decoder = Decoder(cfg, dot_general, shared_embedding=self.shared)
