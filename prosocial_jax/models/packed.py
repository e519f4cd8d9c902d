"""Projection kernels packed for fast small-batch inference: the layer-level type.

`inference.packed_weights.pack_params` turns a parameter tree into packed
kernels; this module is what the layers multiply by.

A decoder step at batch 8 multiplies an [8, in] activation by every weight
matrix once: it is bound by streaming the weights, not by arithmetic. On
XLA:CPU the matmul libraries (YNNPACK / XNNPACK) read a kernel fastest as
[out, in] — each output channel's weights contiguous — and fewer bytes per
weight stream proportionally faster. `pack_params` therefore rewrites every
2-D `kernel` of a parameter tree ([in, out], as T5X stores it) into a
`PackedKernel` once, before the decode loop:

* `"float32"`: the same numbers, transposed (results equal the unpacked model's
  up to summation order).
* `"bfloat16"`: weights rounded to bf16; activations are cast to bf16 at each
  matmul, accumulation stays float32.
* `"int8"`: symmetric per-output-channel int8 weights (scale = max|w| / 127)
  and dynamically quantized activations (per row, scale = max|x| / 127), an
  int8 x int8 -> int32 matmul rescaled to float32: the "dynamic range"
  quantization of TFLite and `torch.ao.quantization.quantize_dynamic`.
  Outputs differ from float32 by the rounding error (measured in bench/README.md).

`layers.DenseGeneral` multiplies by a `PackedKernel` it finds in place of its
kernel; nothing else in the model changes. A tied output layer (T5 v1.0, Prost:
logits = x @ embedding.T) is packed too when `pack_params` is told the embedding's
name: the table is already [out = vocab, in = embed], and the packed copy sits
beside it as `attend_kernel`, read by `layers.Embed.attend` (token lookups keep the
float32 table). Training never sees packed kernels.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array

WEIGHT_FORMATS = ("float32", "bfloat16", "int8")

_INT8_MAX = 127.0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PackedKernel:
  """A projection kernel stored [out, in]; a scanned stack's is [out, layers, in],
  with the layer axis where `nn.scan` slices parameters (`stack.PARAMS_SCAN_AXIS`).

  `scale` [out] ([out, layers]) float32 is the per-output-channel dequantisation
  factor of int8 `values`; None for float values.
  """
  values: Array
  scale: Optional[Array] = None

  @property
  def in_features(self) -> int:
    return self.values.shape[-1]

  @property
  def out_features(self) -> int:
    return self.values.shape[0]

  def project(self, x: Array, out_dtype) -> Array:
    """x [..., in] -> [..., out] in `out_dtype`."""
    if x.shape[-1] != self.in_features:
      raise ValueError(f"PackedKernel expects inputs [..., {self.in_features}], got {x.shape}")
    if self.values.dtype == jnp.int8:
      return self._project_int8(x).astype(out_dtype)
    y = jnp.einsum("...i,oi->...o", x.astype(self.values.dtype), self.values,
                   preferred_element_type=jnp.float32)
    return y.astype(out_dtype)

  def _project_int8(self, x: Array) -> Array:
    x = x.astype(jnp.float32)
    x_scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True) / _INT8_MAX  # [..., 1]
    x_scale = jnp.where(x_scale > 0, x_scale, 1.0)  # an all-zero row stays zero
    x_q = jnp.round(x / x_scale).astype(jnp.int8)
    acc = jnp.einsum("...i,oi->...o", x_q, self.values, preferred_element_type=jnp.int32)
    return acc.astype(jnp.float32) * x_scale * self.scale


def pack_kernel(kernel: Array, weights: str) -> PackedKernel:
  """[in, out] kernel (scanned: [in, layers, out]) -> PackedKernel [out, in]
  ([out, layers, in]) in format `weights`: the layer axis stays in place."""
  return pack_rows(jnp.swapaxes(jnp.asarray(kernel, jnp.float32), 0, -1), weights)


def pack_rows(values: Array, weights: str) -> PackedKernel:
  """A matrix already stored [out, in] or [out, layers, in] (e.g. an embedding
  table used as the output layer) -> PackedKernel in format `weights`."""
  if weights not in WEIGHT_FORMATS:
    raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {weights!r}")
  values = jnp.asarray(values, jnp.float32)
  if weights != "int8":
    return PackedKernel(values.astype(weights))
  scale = jnp.max(jnp.abs(values), axis=-1) / _INT8_MAX  # [..., out]
  scale = jnp.where(scale > 0, scale, 1.0)
  q = jnp.clip(jnp.round(values / scale[..., None]), -_INT8_MAX, _INT8_MAX).astype(jnp.int8)
  return PackedKernel(q, scale)
