"""What every model family's config shares: validation, dtype names, JSON records, sizes.

A family's config is a frozen (hashable) dataclass deriving from `ModelConfig`,
so it can be a static argument of `jax.jit` and a field of a Flax module. It is
JSON-safe through `to_dict` / `from_dict`: the trainer stores it in every
checkpoint's metadata and compares it before resuming, so a checkpoint is never
silently loaded into a model of another shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import jax.numpy as jnp

from prosocial_jax.models import attention, precision, stack
from prosocial_jax.models.errors import ConfigError, unknown_fields

# Activation dtypes; parameters are always float32.
DTYPES = ("float32", "bfloat16")


class ModelConfig:
  """Base of the families' config dataclasses (`T5Config`, `ProstConfig`).

  Subclasses list their integer sizes in `POSITIVE_FIELDS` and their
  probabilities in `RATE_FIELDS`, and have the fields `dtype`, `matmul`,
  `attention_kernel` and `remat_policy`; `__post_init__` checks them all.
  `ATTENTION_DROPOUT_FIELD` names the rate that drops attention weights.
  """
  POSITIVE_FIELDS: ClassVar[tuple[str, ...]] = ()
  RATE_FIELDS: ClassVar[tuple[str, ...]] = ()
  ATTENTION_DROPOUT_FIELD: ClassVar[str] = "dropout_rate"

  def __post_init__(self):
    owner = type(self).__name__
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, list):  # gin and JSON hand over lists; keep the config hashable
        object.__setattr__(self, field.name, tuple(value))
    if self.dtype not in DTYPES:
      raise ConfigError(f"{owner}.dtype must be one of {DTYPES}, got {self.dtype!r}")
    for name in self.POSITIVE_FIELDS:
      if getattr(self, name) <= 0:
        raise ConfigError(f"{owner}.{name} must be positive, got {getattr(self, name)}")
    for name in self.RATE_FIELDS:
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ConfigError(f"{owner}.{name} must be in [0, 1), got {getattr(self, name)}")
    precision.check_matmul(self.matmul, self.dtype, owner=owner)
    attention.check_attention_kernel(
        self.attention_kernel, self.dtype, getattr(self, self.ATTENTION_DROPOUT_FIELD),
        owner=owner, dropout_field=self.ATTENTION_DROPOUT_FIELD)
    stack.check_remat_policy(self.remat_policy, owner=owner)

  def runnable_on(self, backend: str):
    """This config with the run settings `backend` cannot execute replaced by their
    equivalents (the same model): a checkpoint trained with attention_kernel='cudnn' on
    GPUs evaluates and infers on a CPU or TPU with 'xla'."""
    if self.attention_kernel == "cudnn" and backend != "gpu":
      return dataclasses.replace(self, attention_kernel="xla")
    return self

  @property
  def activation_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  @property
  def logits_operand_dtype(self) -> jnp.dtype:
    """The output layer's operand dtype: float32, unless the `bf16_fast` matmul
    accumulates bf16 operands in float32 (logits are float32 either way)."""
    return self.activation_dtype if self.matmul == "bf16_fast" else jnp.dtype(jnp.float32)

  def to_dict(self) -> dict[str, Any]:
    """JSON-safe dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_dict(cls, record: Mapping[str, Any]):
    """Inverse of `to_dict`. Unknown keys are an error, not silently dropped; every
    field is passed explicitly, so gin bindings never leak into a restored config."""
    unknown_fields(cls.__name__, record, (f.name for f in dataclasses.fields(cls)))
    return cls(**dict(record))


def sized_config(config_cls: type, label: str, table: Mapping[str, Mapping[str, Any]],
                 size: str, overrides: Mapping[str, Any], fixed: Mapping[str, Any] = None):
  """`config_cls` of a named size: `fixed` fields, then the size's, then `overrides`."""
  if size not in table:
    raise ConfigError(f"Unknown {label} size {size!r}; known: {sorted(table)}")
  # A typo'd override would otherwise reach the dataclass as a TypeError.
  unknown_fields(config_cls.__name__, overrides,
                 (f.name for f in dataclasses.fields(config_cls)))
  fields = {**(fixed or {}), **table[size], **overrides}
  if "vocab_size" not in fields:
    raise ConfigError(f"{label} size {size!r} needs an explicit vocab_size=")
  return config_cls(**fields)
