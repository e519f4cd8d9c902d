"""T5 model configuration and the one table of T5 sizes (v1.1 and v1.0).

Frozen, validated and JSON-safe through `config_base.ModelConfig`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gin

from prosocial_jax.models.config_base import ModelConfig, sized_config
from prosocial_jax.models.errors import ConfigError


@gin.configurable(module="prosocial_jax.models.t5")
@dataclasses.dataclass(frozen=True)
class T5Config(ModelConfig):
  """Hyperparameters of a T5 encoder-decoder (field names follow T5X)."""
  POSITIVE_FIELDS = ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim",
                     "num_encoder_layers", "num_decoder_layers")
  RATE_FIELDS = ("dropout_rate",)

  vocab_size: int
  emb_dim: int
  num_heads: int
  head_dim: int
  mlp_dim: int
  num_encoder_layers: int
  num_decoder_layers: int
  # ("gelu", "linear") is T5 v1.1's gated GELU; ("relu",) is T5 v1.0.
  mlp_activations: tuple[str, ...] = ("gelu", "linear")
  dropout_rate: float = 0.0
  # True ties the output layer to the token embedding (T5 v1.0).
  logits_via_embedding: bool = False
  # Activation dtype (`config_base.DTYPES`); parameters are always float32.
  dtype: str = "float32"
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  # Matmul kernel (`precision.MATMULS`): "bf16_fast" needs dtype="bfloat16", "f32_fast"
  # dtype="float32" (faster train steps on a CPU).
  matmul: str = "xla"
  # Attention kernel (`attention.ATTENTION_KERNELS`): "cudnn" is cuDNN's flash attention
  # (NVIDIA GPUs, dtype="bfloat16", dropout_rate=0: T5 drops attention weights too).
  attention_kernel: str = "xla"
  # Rematerialisation of each layer in the backward pass (`stack.REMAT_POLICIES`).
  remat_policy: str = "none"
  # Token lookups as one-hot matmuls (T5X's choice on TPUs): on an fsdp mesh their
  # backward is a matmul sharded like the table, where a gather's scatter-add makes the
  # partitioner replicate the [batch, length, embed] gradient. Slower on a CPU.
  one_hot_embedding: bool = False
  # One `nn.scan` over a stack's layers: parameters gain a `layers` axis at position 1,
  # as T5X (encoder/layers/..., not encoder/layers_{i}/...); faster compiles for deep models.
  scan_layers: bool = False

  def __post_init__(self):
    super().__post_init__()
    if not self.mlp_activations:
      raise ConfigError("T5Config.mlp_activations must name at least one activation")


# The one place that defines T5 sizes (T5X's t5_1_1/*.gin and t5_1_0/*.gin; the
# published google/t5-v1_1-* and t5-* checkpoints). Every published size uses the
# 32128-token SentencePiece vocabulary; `tiny` (tests, quickstart) has none of its own.
_VOCAB = dict(vocab_size=32128)
T5_1_1_SIZES: dict[str, dict[str, Any]] = {
    # The shape of the Hugging Face peer's `tiny` in the project's benchmark comparisons.
    "tiny": dict(emb_dim=128, num_heads=4, head_dim=32, mlp_dim=512,
                 num_encoder_layers=2, num_decoder_layers=2),
    "small": dict(_VOCAB, emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024,
                  num_encoder_layers=8, num_decoder_layers=8),
    "base": dict(_VOCAB, emb_dim=768, num_heads=12, head_dim=64, mlp_dim=2048,
                 num_encoder_layers=12, num_decoder_layers=12),
    "large": dict(_VOCAB, emb_dim=1024, num_heads=16, head_dim=64, mlp_dim=2816,
                  num_encoder_layers=24, num_decoder_layers=24),
    "xl": dict(_VOCAB, emb_dim=2048, num_heads=32, head_dim=64, mlp_dim=5120,
               num_encoder_layers=24, num_decoder_layers=24),
    "xxl": dict(_VOCAB, emb_dim=4096, num_heads=64, head_dim=64, mlp_dim=10240,
                num_encoder_layers=24, num_decoder_layers=24),
}
# T5 v1.0: ReLU MLP, output layer tied to the embedding (Delphi is T5-11B).
T5_1_0_SIZES: dict[str, dict[str, Any]] = {
    "small": dict(_VOCAB, emb_dim=512, num_heads=8, head_dim=64, mlp_dim=2048,
                  num_encoder_layers=6, num_decoder_layers=6),
    "base": dict(_VOCAB, emb_dim=768, num_heads=12, head_dim=64, mlp_dim=3072,
                 num_encoder_layers=12, num_decoder_layers=12),
    "large": dict(_VOCAB, emb_dim=1024, num_heads=16, head_dim=64, mlp_dim=4096,
                  num_encoder_layers=24, num_decoder_layers=24),
    "3b": dict(_VOCAB, emb_dim=1024, num_heads=32, head_dim=128, mlp_dim=16384,
               num_encoder_layers=24, num_decoder_layers=24),
    "11b": dict(_VOCAB, emb_dim=1024, num_heads=128, head_dim=128, mlp_dim=65536,
                num_encoder_layers=24, num_decoder_layers=24),
}


@gin.configurable(module="prosocial_jax.models.t5")
def t5_1_1_config(size: str, **overrides) -> T5Config:
  """A T5 v1.1 config (gated GELU, untied output layer); `overrides` replace any field.

  `tiny` has no vocabulary of its own: pass `vocab_size=`.
  """
  return sized_config(T5Config, "T5 v1.1", T5_1_1_SIZES, size, overrides,
                      fixed=dict(mlp_activations=("gelu", "linear"), logits_via_embedding=False))


@gin.configurable(module="prosocial_jax.models.t5")
def t5_1_0_config(size: str, **overrides) -> T5Config:
  """A T5 v1.0 config (ReLU MLP, output tied to the embedding and scaled by
  1/sqrt(emb_dim)); `overrides` replace any field."""
  return sized_config(T5Config, "T5 v1.0", T5_1_0_SIZES, size, overrides,
                      fixed=dict(mlp_activations=("relu",), logits_via_embedding=True))
