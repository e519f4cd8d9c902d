"""Shared Flax linen layers for the encoder-decoder models (T5 and Prost); the
attention block and its masks are in `attention.py`.

Conventions that every layer here follows:
* Parameters are created in float32 and cast to the activation `dtype` at use.
* Attention logits, softmax and output logits are computed in float32.
* Every parameter carries logical axis names (`nn.with_logical_partitioning`)
  and key activations get `nn.with_logical_constraint`; no layer knows the mesh
  (the rules table in `prosocial_jax.partitioning.rules` decides).
* Projections take an injectable `dot_general` (default `jax.lax.dot_general`)
  so a faster mixed-precision matmul can be passed in without touching layers.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from prosocial_jax.models import precision, reductions
from prosocial_jax.models.packed import PackedKernel

Array = jax.Array
DType = Any
Initializer = Callable[..., Array]
DotGeneral = Callable[..., Array]

# T5X initialisers (same distributions, so from-scratch runs behave like T5X).
default_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
attention_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
relpos_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")

constrain = nn.with_logical_constraint


def _as_tuple(x) -> tuple[int, ...]:
  return tuple(x) if isinstance(x, (tuple, list)) else (x,)


class DenseGeneral(nn.Module):
  """Projection of the trailing `axis` dims onto `features` (bias optional).

  The kernel is stored 2-D, [prod(input dims), prod(features)], as in T5X
  checkpoints (e.g. attention query [embed, heads*head_dim]); it is reshaped at
  use. The bias, when present, is [prod(features)] with the kernel's output axis
  name. Only trailing, contiguous input axes are supported.

  For inference the kernel may be a `packed.PackedKernel` (from
  `inference.packed_weights.pack_params`): it is then multiplied as it is stored ([out, in],
  possibly bf16 or int8) instead of through `dot_general`.
  """
  features: int | Sequence[int]
  kernel_axes: tuple[str, str]  # logical names of the 2-D kernel; no default on purpose
  axis: int | Sequence[int] = -1
  kernel_init: Initializer = default_kernel_init
  dtype: DType = jnp.float32
  dot_general: DotGeneral = lax.dot_general
  use_bias: bool = False
  # Result dtype when it differs from `dtype` (e.g. float32 logits from bf16 operands).
  output_dtype: Optional[DType] = None

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    features = _as_tuple(self.features)
    axes = sorted(a % inputs.ndim for a in _as_tuple(self.axis))
    if axes != list(range(inputs.ndim - len(axes), inputs.ndim)):
      raise ValueError(f"DenseGeneral contracts trailing axes only, got axis={self.axis}")
    batch_shape = inputs.shape[:axes[0]]
    in_dim = int(np.prod([inputs.shape[a] for a in axes]))
    out_dim = int(np.prod(features))
    x = jnp.asarray(inputs, self.dtype).reshape(batch_shape + (in_dim,))
    packed = self.get_variable("params", "kernel") if self.has_variable("params", "kernel") else None
    if isinstance(packed, PackedKernel):  # from `inference.packed_weights.pack_params`
      if (packed.in_features, packed.out_features) != (in_dim, out_dim):
        raise ValueError(f"{self.name}: packed kernel is [{packed.out_features}, "
                         f"{packed.in_features}], expected [{out_dim}, {in_dim}]")
      y = packed.project(x, self.output_dtype or self.dtype)
    else:
      kernel = self.param(
          "kernel", nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
          (in_dim, out_dim), jnp.float32)
      kwargs = {} if self.output_dtype is None else {"preferred_element_type": self.output_dtype}
      if not precision.takes_float32_weights(self.dot_general):
        kernel = jnp.asarray(kernel, self.dtype)
      y = self.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), **kwargs)
    if self.use_bias:
      bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                             (self.kernel_axes[1],)),
                        (out_dim,), jnp.float32)
      y = y + jnp.asarray(bias, y.dtype)
    return y.reshape(batch_shape + features)


class Embed(nn.Module):
  """Token embedding [vocab, embed]; `attend` reuses it as an output layer.

  Also learned position embeddings, with `axes=("abspos_buckets", "embed")`.
  """
  num_embeddings: int
  features: int
  dtype: DType = jnp.float32
  axes: tuple[str, str] = ("vocab", "embed")
  # T5X: N(0, 1), the scale the RMS norms and v1.0's tied logits expect.
  embedding_init: Initializer = nn.initializers.normal(stddev=1.0)
  # A one-hot matmul instead of a gather: what T5X does for TPU SPMD; slow on CPU.
  one_hot: bool = False

  def setup(self):
    self.embedding = self.param(
        "embedding", nn.with_logical_partitioning(self.embedding_init, self.axes),
        (self.num_embeddings, self.features), jnp.float32)

  def __call__(self, tokens: Array) -> Array:
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"Embed expects integer token ids, got {tokens.dtype}")
    if self.one_hot:
      table = jnp.asarray(self.embedding, self.dtype)
      out = jax.nn.one_hot(tokens, self.num_embeddings, dtype=self.dtype) @ table
    else:
      # Rows first, then the cast: the gradient's scatter-add of repeated tokens sums in
      # float32 (a bf16 table summed them in bf16: 6% off for a token seen 1000 times),
      # and no bf16 copy of the whole table is made each step.
      out = jnp.take(self.embedding, tokens, axis=0).astype(self.dtype)
    return constrain(out, ("batch", "length", "embed"))  # [batch, length, embed]

  def attend(self, query: Array, *, dtype: DType = jnp.float32,
             dot_general: DotGeneral = lax.dot_general) -> Array:
    """[..., embed] -> [..., vocab] float32 logits; operands in `dtype`
    (float32 by default; bf16 with a matmul that accumulates in float32), or
    those of a packed `attend_kernel` beside the table (inference only)."""
    packed = (self.get_variable("params", "attend_kernel")
              if self.has_variable("params", "attend_kernel") else None)
    if isinstance(packed, PackedKernel):  # from `pack_params(tied_output_embedding=)`
      if (packed.out_features, packed.in_features) != (self.num_embeddings, self.features):
        raise ValueError(f"{self.name}: packed attend_kernel is [{packed.out_features}, "
                         f"{packed.in_features}], expected [{self.num_embeddings}, "
                         f"{self.features}]")
      return packed.project(query, jnp.float32)
    q = jnp.asarray(query, dtype)
    table_t = jnp.asarray(self.embedding, dtype).T  # [embed, vocab]
    return dot_general(q, table_t, (((q.ndim - 1,), (0,)), ((), ())),
                       preferred_element_type=jnp.float32)


class RMSNorm(nn.Module):
  """T5's "LayerNorm": scale only, no mean subtraction, no bias."""
  epsilon: float = 1e-6
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                       (x.shape[-1],), jnp.float32)
    x = jnp.asarray(x, jnp.float32)  # statistics in fp32 even for bf16 activations
    y = x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.epsilon)
    return reductions.scale_features(jnp.asarray(y, self.dtype), scale)


class LayerNorm(nn.Module):
  """Classic layer norm (mean and variance, scale and bias), as BlenderBot / Prost."""
  epsilon: float = 1e-5
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = (x.shape[-1],)
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                       features, jnp.float32)
    bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
                      features, jnp.float32)
    x = jnp.asarray(x, jnp.float32)  # statistics in fp32 even for bf16 activations
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = reductions.scale_features((x - mean) * lax.rsqrt(var + self.epsilon), scale, bias)
    return jnp.asarray(y, self.dtype)


def activation(name: str) -> Callable[[Array], Array]:
  # T5X names activations by flax function name; gelu is the tanh approximation
  # (HF "gelu_new"), which is what T5 v1.1 was trained with. "gelu_exact" is the
  # erf form (PyTorch / HF "gelu"), which BlenderBot and Prost use.
  if name == "linear":
    return lambda x: x
  if name == "gelu_exact":
    return functools.partial(nn.gelu, approximate=False)
  fn = getattr(nn, name, None)
  if not callable(fn):
    raise ValueError(f"Unknown MLP activation {name!r}")
  return fn


class MlpBlock(nn.Module):
  """Feed-forward block: ("gelu", "linear") is v1.1's gated GELU (wi_0, wi_1, wo);
  a single activation gives the classic `wi`, `wo` MLP."""
  intermediate_dim: int
  activations: Sequence[str] = ("gelu", "linear")
  dropout_rate: float = 0.0
  dtype: DType = jnp.float32
  dot_general: DotGeneral = lax.dot_general

  @nn.compact
  def __call__(self, inputs: Array, *, deterministic: bool) -> Array:
    dense = functools.partial(DenseGeneral, dtype=self.dtype, dot_general=self.dot_general)
    hidden = []
    for i, act in enumerate(self.activations):
      name = "wi" if len(self.activations) == 1 else f"wi_{i}"
      h = dense(self.intermediate_dim, kernel_axes=("embed", "mlp"), name=name)(inputs)
      hidden.append(activation(act)(h))
    x = functools.reduce(operator.mul, hidden)  # [batch, length, mlp]
    x = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(x, deterministic=deterministic)
    x = constrain(x, ("batch", "length", "mlp"))
    return dense(inputs.shape[-1], kernel_axes=("mlp", "embed"), name="wo")(x)


def relative_position_bucket(relative_position: Array, *, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> Array:
  """Maps (key position - query position) to a bucket id in [0, num_buckets).

  Half the buckets (per direction) are exact small distances, the rest grow
  logarithmically up to `max_distance`; anything further shares the last one.
  Causal (decoder) attention only sees keys at or before the query.
  """
  distance = -jnp.asarray(relative_position, jnp.int32)  # > 0: key before query
  bucket = jnp.zeros_like(distance)
  if bidirectional:
    num_buckets //= 2
    bucket = bucket + (distance < 0).astype(jnp.int32) * num_buckets
    distance = jnp.abs(distance)
  else:
    distance = jnp.maximum(distance, 0)
  max_exact = num_buckets // 2
  log_ratio = (jnp.log(distance.astype(jnp.float32) / max_exact + np.finfo(np.float32).eps)
               / np.log(max_distance / max_exact))
  large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return bucket + jnp.where(distance < max_exact, distance, large)


class RelativePositionBiases(nn.Module):
  """T5 relative position bias, one table [heads, buckets] shared by a stack.

  The bias stays float32 whatever the activation dtype: it is added to the
  float32 attention logits.
  """
  num_buckets: int
  max_distance: int
  num_heads: int

  @nn.compact
  def __call__(self, query_positions: Array, key_positions: Array, *,
               bidirectional: bool) -> Array:
    """Positions [..., q] and [..., k] -> bias [1 or batch, heads, q, k] (float32)."""
    table = self.param(
        "rel_embedding", nn.with_logical_partitioning(relpos_init, ("heads", "relpos_buckets")),
        (self.num_heads, self.num_buckets), jnp.float32)
    relative = key_positions[..., None, :] - query_positions[..., :, None]  # [..., q, k]
    buckets = relative_position_bucket(relative, bidirectional=bidirectional,
                                       num_buckets=self.num_buckets,
                                       max_distance=self.max_distance)
    # A gather (cheap on CPU/GPU) rather than T5X's one-hot contraction.
    bias = jnp.moveaxis(jnp.take(table, buckets, axis=1), 0, -3)  # [..., heads, q, k]
    return bias if bias.ndim == 4 else bias[None]
