"""Prost model configuration and its size table.

Prost is the PushShift / BlenderBot transformer that the ProsocialDialog paper
fine-tunes (ParlAI `transformer/generator`, `--variant prelayernorm`; Hugging
Face `BlenderbotForConditionalGeneration`): learned position embeddings,
pre-layer-norm blocks with a final layer norm per stack, exact (erf) GELU,
projections with biases, token embeddings scaled by sqrt(emb_dim) and shared by
encoder, decoder and the (unscaled) output layer, query scaled by
1/sqrt(head_dim) at run time, separate encoder and decoder depths.

Frozen, validated and JSON-safe through `config_base.ModelConfig`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gin

from prosocial_jax.models.config_base import ModelConfig, sized_config


@gin.configurable(module="prosocial_jax.models.prost")
@dataclasses.dataclass(frozen=True)
class ProstConfig(ModelConfig):
  """Hyperparameters of a Prost (BlenderBot-style) encoder-decoder.

  Field names follow `T5Config` where the meaning is the same; the Hugging Face
  `BlenderbotConfig` names are given in comments.
  """
  POSITIVE_FIELDS = ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim",
                     "max_positions", "num_encoder_layers", "num_decoder_layers")
  RATE_FIELDS = ("dropout_rate", "attention_dropout_rate")
  ATTENTION_DROPOUT_FIELD = "attention_dropout_rate"

  vocab_size: int                 # vocab_size
  emb_dim: int                    # d_model
  num_heads: int                  # encoder_attention_heads = decoder_attention_heads
  head_dim: int                   # d_model / heads
  mlp_dim: int                    # encoder_ffn_dim = decoder_ffn_dim
  num_encoder_layers: int         # encoder_layers
  num_decoder_layers: int         # decoder_layers
  max_positions: int = 128        # max_position_embeddings (learned, per stack)
  activation: str = "gelu_exact"  # activation_function "gelu" (erf form)
  scale_embedding: bool = True    # scale_embedding: tokens x sqrt(emb_dim)
  layer_norm_epsilon: float = 1e-5
  dropout_rate: float = 0.0       # dropout (embeddings and residual branches)
  attention_dropout_rate: float = 0.0  # attention_dropout
  # Activation dtype (`config_base.DTYPES`); parameters are always float32.
  dtype: str = "float32"
  matmul: str = "xla"             # precision.MATMULS
  # attention.ATTENTION_KERNELS; "cudnn" (flash attention): NVIDIA GPUs, bfloat16, no
  # attention_dropout
  attention_kernel: str = "xla"
  remat_policy: str = "none"      # stack.REMAT_POLICIES
  # Token and position lookups as one-hot matmuls (T5X's choice on TPUs): on an fsdp
  # mesh their backward is a matmul sharded like the table, where a gather's
  # scatter-add makes the partitioner replicate the gradient. Slower on a CPU.
  one_hot_embedding: bool = False
  scan_layers: bool = False


# The one place that defines Prost sizes. `2_7b` is BlenderBot-3B / PushShift 2.7B
# (facebook/blenderbot-3B's shapes). `tiny` is for tests, with asymmetric depths
# like 2_7b, and has no vocabulary of its own (pass vocab_size=).
PROST_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(emb_dim=64, num_heads=4, head_dim=16, mlp_dim=256,
                 num_encoder_layers=2, num_decoder_layers=3),
    "2_7b": dict(vocab_size=8008, emb_dim=2560, num_heads=32, head_dim=80, mlp_dim=10240,
                 num_encoder_layers=2, num_decoder_layers=24),
}


@gin.configurable(module="prosocial_jax.models.prost")
def prost_config(size: str, **overrides) -> ProstConfig:
  """A Prost config of a named size; `overrides` replace any field."""
  return sized_config(ProstConfig, "Prost", PROST_SIZES, size, overrides)
