"""Matmul kernels the layers can be given through `dot_general=`.

`MATMULS` is the table a config's `matmul` field names:

* `"xla"`: `jax.lax.dot_general` as is.
* `"bf16_fast"`: for bf16 x bf16 projections, a matmul with its own VJP that
  keeps every dot on XLA:CPU's fast path (YNNPACK / AMX), which only takes
  bf16 x bf16 -> **f32** with standard operand layouts ([M, K] x [K, N]):
  - forward: bf16 x bf16 -> f32 accumulation, then cast to the wanted dtype;
  - backward: the cotangent is cast to bf16 and both gradients are again
    standard-layout bf16 x bf16 -> f32 dots on explicitly transposed operands
    (dx = g @ w.T, dw = x.T @ g), cast back to the operands' dtypes.
  A plain bf16 -> bf16 dot is silently run in f32 by XLA:CPU (measured on a
  1024x512x1024 matmul: f32 3.55 ms, bf16 -> bf16 4.12 ms, bf16 -> f32 0.76 ms
  on an AMX CPU), and autodiff of `preferred_element_type=f32` makes
  transposed-operand dots that the fast path refuses and the fallback kernel
  rejects at run time. Anything that is not a bf16
  "[..., K] x [K, N]" contraction falls back to `lax.dot_general`.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

_STANDARD = (((1,), (0,)), ((), ()))  # [M, K] x [K, N]


def _dot_f32(a: Array, b: Array) -> Array:
  return lax.dot_general(a, b, _STANDARD, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def bf16_matmul(x: Array, w: Array, out_dtype) -> Array:
  """x [M, K] bf16 @ w [K, N] bf16 -> [M, N] out_dtype, accumulated in f32."""
  # `w` may be a transpose (a tied output layer): keep it from being folded into
  # the dot as a transposed operand.
  return _dot_f32(x, lax.optimization_barrier(w)).astype(out_dtype)


def _bf16_matmul_fwd(x, w, out_dtype):
  return bf16_matmul(x, w, out_dtype), (x, w)


def _bf16_matmul_bwd(out_dtype, residuals, g):
  del out_dtype
  x, w = residuals
  g = g.astype(jnp.bfloat16)  # [M, N]
  # The barrier keeps XLA from folding the transposes back into the dots'
  # dimension numbers (a transposed-operand dot leaves the fast path).
  w_t, x_t = lax.optimization_barrier((jnp.transpose(w), jnp.transpose(x)))
  dx = _dot_f32(g, w_t).astype(x.dtype)  # [M, N] x [N, K]
  dw = _dot_f32(x_t, g).astype(w.dtype)  # [K, M] x [M, N]
  return dx, dw


bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)


def bf16_fast_dot_general(lhs: Array, rhs: Array, dimension_numbers, precision=None,
                          preferred_element_type=None) -> Array:
  """Drop-in `dot_general` routing bf16 "[..., K] x [K, N]" products to `bf16_matmul`."""
  standard = (rhs.ndim == 2 and tuple(map(tuple, dimension_numbers[0])) == ((lhs.ndim - 1,), (0,))
              and not any(dimension_numbers[1]))
  if not (standard and lhs.dtype == jnp.bfloat16 and rhs.dtype == jnp.bfloat16):
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type)
  out_dtype = jnp.dtype(preferred_element_type or lhs.dtype)
  batch_shape = lhs.shape[:-1]
  y = bf16_matmul(lhs.reshape(-1, lhs.shape[-1]), rhs, out_dtype)
  return y.reshape(batch_shape + (rhs.shape[1],))


MATMULS: dict[str, Callable[..., Array]] = {
    "xla": lax.dot_general,
    "bf16_fast": bf16_fast_dot_general,
}


def check_matmul(matmul: str, dtype: str, *, owner: str) -> None:
  """Config validation shared by the model families."""
  if matmul not in MATMULS:
    raise ValueError(f"{owner}.matmul must be one of {sorted(MATMULS)}, got {matmul!r}")
  if matmul == "bf16_fast" and dtype != "bfloat16":
    raise ValueError(f"{owner}.matmul='bf16_fast' needs dtype='bfloat16', got {dtype!r}")


def dot_general_for(matmul: str, override: Optional[Callable[..., Array]] = None):
  """The kernel a module uses: an explicit `override`, else the config's choice."""
  return override if override is not None else MATMULS[matmul]
