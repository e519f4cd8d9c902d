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

from prosocial_jax.models import encdec, layers, precision, stack
from prosocial_jax.models.prost.config import ProstConfig

Array = jax.Array

# ParlAI's initialisers: embeddings N(0, emb_dim^-0.5), Xavier for the projections.
_attention_init = nn.initializers.xavier_normal()
_mlp_init = nn.initializers.xavier_uniform()


def _embedding_init(emb_dim: int):
  return nn.initializers.normal(stddev=emb_dim ** -0.5)


class _Block(nn.Module):
  """Shared plumbing of one config: layer norms, attention, MLP, dropout."""
  config: ProstConfig
  dot_general: layers.DotGeneral = lax.dot_general
  scanned: bool = False  # inside `stack.run_layers`' scan: return (output, None)

  def norm(self, name):
    cfg = self.config
    return layers.LayerNorm(epsilon=cfg.layer_norm_epsilon, dtype=cfg.activation_dtype,
                            name=name)

  def attention(self, name, cross_attention=False):
    cfg = self.config
    return layers.MultiHeadAttention(
        num_heads=cfg.num_heads, head_dim=cfg.head_dim, dtype=cfg.activation_dtype,
        dropout_rate=cfg.attention_dropout_rate, kernel_init=_attention_init,
        cross_attention=cross_attention, dot_general=self.dot_general, use_bias=True,
        query_scale=cfg.head_dim ** -0.5, names=("q_proj", "k_proj", "v_proj", "out_proj"),
        name=name)

  def mlp(self, x, deterministic):
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
    return nn.Dropout(self.config.dropout_rate)(x, deterministic=deterministic)

  def finish(self, y):
    y = nn.with_logical_constraint(y, ("batch", "length", "embed"))
    return (y, None) if self.scanned else y


class EncoderLayer(_Block):
  """Pre-layer-norm self-attention, then pre-layer-norm MLP."""
  STATIC_ARGNUMS = (3,)  # deterministic (counting self as 0), for remat

  @nn.compact
  def __call__(self, inputs, mask, deterministic):
    # inputs: [batch, length, embed]
    x = self.norm("self_attn_layer_norm")(inputs)
    x = self.attention("self_attn")(x, x, mask, deterministic=deterministic)
    x = inputs + self.dropout(x, deterministic)
    y = self.mlp(self.norm("final_layer_norm")(x), deterministic)
    return self.finish(x + self.dropout(y, deterministic))


class DecoderLayer(_Block):
  """Self-attention, cross-attention over the encoder, MLP; each pre-layer-normed."""
  STATIC_ARGNUMS = (5, 6, 8)  # deterministic, decode, decode_length

  @nn.compact
  def __call__(self, inputs, encoded, self_mask, cross_mask, deterministic, decode=False,
               decode_index=None, decode_length=None):
    # inputs: [batch, target_len, embed]; encoded: [batch, input_len, embed]
    x = self.norm("self_attn_layer_norm")(inputs)
    x = self.attention("self_attn")(
        x, x, self_mask, deterministic=deterministic, decode=decode, decode_index=decode_index,
        decode_length=decode_length)
    x = inputs + self.dropout(x, deterministic)
    y = self.norm("encoder_attn_layer_norm")(x)
    y = self.attention("encoder_attn", cross_attention=True)(
        y, encoded, cross_mask, deterministic=deterministic, decode=decode)
    y = x + self.dropout(y, deterministic)
    z = self.mlp(self.norm("final_layer_norm")(y), deterministic)
    return self.finish(y + self.dropout(z, deterministic))


class _Stack(_Block):
  """Token + learned position embeddings, shared by the encoder and the decoder."""
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
                       embedding_init=_embedding_init(cfg.emb_dim), name="embed_positions")
    x = x + pos(jnp.broadcast_to(positions, tokens.shape).astype(jnp.int32))
    return self.dropout(x, deterministic).astype(cfg.activation_dtype)  # [batch, len, embed]


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
                         x, encoder_mask, deterministic,
                         static_argnums=EncoderLayer.STATIC_ARGNUMS)
    return self.norm("layer_norm")(x)


class Decoder(_Stack):
  """Embeddings -> layers -> final layer norm -> tied output layer (float32 logits).

  With `decode=True` the decoder keeps `cache/decode_index` (the position of the
  next token) and every layer's KV cache; see `layers.MultiHeadAttention`.
  """

  @nn.compact
  def __call__(self, encoded, decoder_input_tokens, decoder_positions=None, decoder_mask=None,
               encoder_decoder_mask=None, *, deterministic, decode=False,
               max_decode_length=None):
    cfg = self.config
    q_len = decoder_input_tokens.shape[-1]
    decode_index = None
    if decode:
      if max_decode_length is None:
        raise ValueError("decode=True needs max_decode_length (the KV cache length)")
      if max_decode_length > cfg.max_positions:
        raise ValueError(f"max_decode_length {max_decode_length} exceeds Prost's "
                         f"{cfg.max_positions} learned positions")
      cache_ready = self.has_variable("cache", "decode_index")
      index = self.variable("cache", "decode_index", lambda: jnp.zeros((), jnp.int32))
      if cache_ready:
        decode_index = index.value
        decoder_positions = decode_index + jnp.arange(q_len)
        index.value = decode_index + q_len
    if decoder_positions is None:
      decoder_positions = jnp.arange(q_len)
    y = self.embed(decoder_input_tokens, decoder_positions, deterministic)
    y = stack.run_layers(DecoderLayer, cfg, self.dot_general, cfg.num_decoder_layers,
                         y, encoded, decoder_mask, encoder_decoder_mask, deterministic,
                         decode, decode_index, max_decode_length,
                         static_argnums=DecoderLayer.STATIC_ARGNUMS)
    y = self.norm("layer_norm")(y)
    # Tied, unscaled output layer; float32 logits (bf16 operands only with bf16_fast).
    operand_dtype = cfg.activation_dtype if cfg.matmul == "bf16_fast" else jnp.float32
    logits = self.shared_embedding.attend(y, dtype=operand_dtype, dot_general=self.dot_general)
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
                               embedding_init=_embedding_init(cfg.emb_dim))
    self.encoder = Encoder(cfg, dot_general, shared_embedding=self.shared)
    self.decoder = Decoder(cfg, dot_general, shared_embedding=self.shared)
