"""T5 model configuration and the one table of T5 v1.1 sizes.

The config is a frozen (hashable) dataclass so it can be a static argument of
`jax.jit` and a field of a Flax module. It is JSON-safe through `to_dict` /
`from_dict`: the trainer stores it next to checkpoints and compares it before
resuming, so a checkpoint is never silently loaded into a model of another shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import gin
import jax.numpy as jnp

_DTYPES = ("float32", "bfloat16")


@gin.configurable(module="prosocial_jax.models.t5")
@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyperparameters of a T5 encoder-decoder (field names follow T5X)."""
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
  # Activation dtype; parameters are always float32.
  dtype: str = "float32"
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128

  def __post_init__(self):
    # Gin and JSON hand over lists; keep the config hashable.
    object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
    if self.dtype not in _DTYPES:
      raise ValueError(f"T5Config.dtype must be one of {_DTYPES}, got {self.dtype!r}")
    for name in ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim"):
      if getattr(self, name) <= 0:
        raise ValueError(f"T5Config.{name} must be positive, got {getattr(self, name)}")
    if not self.mlp_activations:
      raise ValueError("T5Config.mlp_activations must name at least one activation")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"T5Config.dropout_rate must be in [0, 1), got {self.dropout_rate}")

  @property
  def activation_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  def to_dict(self) -> dict[str, Any]:
    """JSON-safe dict (tuples become lists)."""
    out = dataclasses.asdict(self)
    out["mlp_activations"] = list(self.mlp_activations)
    return out

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "T5Config":
    """Inverse of `to_dict`; unknown keys are an error, not silently dropped."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"Unknown T5Config fields {unknown}; known: {sorted(known)}")
    # Pass every field explicitly so gin bindings never leak into a restored config.
    return cls(**dict(d))


# The one place that defines T5 v1.1 sizes. `tiny` exists for tests only.
# `small` is google/t5-v1_1-small (t5x/examples/t5/t5_1_1/small.gin).
T5_1_1_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
                 num_encoder_layers=2, num_decoder_layers=2),
    "small": dict(vocab_size=32128, emb_dim=512, num_heads=6, head_dim=64,
                  mlp_dim=1024, num_encoder_layers=8, num_decoder_layers=8),
}


@gin.configurable(module="prosocial_jax.models.t5")
def t5_1_1_config(size: str, **overrides) -> T5Config:
  """A T5 v1.1 config of a named size; `overrides` replace any field.

  `tiny` has no vocabulary of its own: pass `vocab_size=`.
  """
  if size not in T5_1_1_SIZES:
    raise ValueError(f"Unknown T5 v1.1 size {size!r}; known: {sorted(T5_1_1_SIZES)}")
  fields = dict(mlp_activations=("gelu", "linear"), logits_via_embedding=False)
  fields.update(T5_1_1_SIZES[size])
  fields.update(overrides)
  if "vocab_size" not in fields:
    raise ValueError(f"T5 v1.1 size {size!r} needs an explicit vocab_size=")
  return T5Config(**fields)
