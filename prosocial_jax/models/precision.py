"""Matmul kernels the layers can be given through `dot_general=`.

`MATMULS` is the table a config's `matmul` field names:

* `"xla"`: `jax.lax.dot_general` as is.
* `"bf16_fast"` and `"f32_fast"`: products that stay on XLA:CPU's fast matmul path
  (YNNPACK; AMX where the CPU has it), which takes only bf16 x bf16 -> **f32**
  dots with canonical operands (contracting dimension last on the left, first
  on the right, row-major). Two things push a bf16 dot off it, where XLA:CPU
  silently runs it in f32: a bf16 -> bf16 result (what flax's `dtype=bfloat16`
  emits), and a transposed operand, which layout assignment turns into a
  column-major layout instead of a copy. Autodiff makes exactly such dots for
  every weight gradient (x^T g) and every attention backward product.
  `fast_einsum` therefore has its own VJP: forward and backward are bf16 x bf16
  -> f32 einsums, and each product's single contracted dimension is split in
  two ((n) -> (2, n/2)), which makes XLA's dot decomposition copy a transposed
  operand into canonical form (for a canonical one the split is a free reshape). Measured on the T5 v1.1-small train step's
  optimised HLO: without the split all 386 backward dots ran in f32, with it
  all 579 dots of the step are bf16 x bf16 -> f32. The projections
  (`bf16_fast_dot_general`) and the attention products (`attention_einsum_for`)
  both go through it. Anything that is not a bf16 "[..., K] x [K, N]"
  projection falls back to `lax.dot_general`.
  `f32_fast` is the same with float32 operands: f32 dots with a column-major
  operand run on a slower kernel too. T5 v1.1-small train step (batch 8, 128 /
  64, Adafactor, 2-core Zen 5): 1.02 s/step with `xla`, 0.84 with `f32_fast`.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jax import lax

from prosocial_jax.models.errors import ConfigError

Array = jax.Array

_SPLIT_MIN = 16  # shorter contractions are not split (nothing to gain, odd sizes)


def _parse(spec: str) -> tuple[str, str, str]:
  inputs, out = spec.replace(" ", "").split("->")
  lhs, rhs = inputs.split(",")
  return lhs, rhs, out


def _einsum_f32(spec: str, a: Array, b: Array) -> Array:
  """einsum(spec, a, b) accumulated and returned in f32, its single contracted
  dimension split in two (see the module doc). Where it cannot be split (odd,
  shorter than _SPLIT_MIN, or several contracted dimensions) the operands are
  cast to f32: XLA:CPU's fallback kernel rejects a non-canonical bf16 x bf16 -> f32
  dot at run time ("Unsupported element type for DotThunk::Execute")."""
  lhs, rhs, out = _parse(spec)
  contracted = [c for c in lhs if c in rhs and c not in out]
  n = a.shape[lhs.index(contracted[0])] if len(contracted) == 1 else 0
  if n % 2 or n < _SPLIT_MIN:
    return jnp.einsum(spec, a.astype(jnp.float32), b.astype(jnp.float32))
  c = contracted[0]
  hi, lo = [x for x in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if x not in spec][:2]

  def halve(x, labels):
    i = labels.index(c)
    return x.reshape(x.shape[:i] + (2, n // 2) + x.shape[i + 1:]), labels.replace(c, hi + lo)
  (a, lhs), (b, rhs) = halve(a, lhs), halve(b, rhs)
  return jnp.einsum(f"{lhs},{rhs}->{out}", a, b, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3))
def fast_einsum(spec: str, a: Array, b: Array, out_dtype) -> Array:
  """einsum of `a` (bf16 or f32) and `b`, in `a`'s dtype, accumulated in f32 and cast
  to `out_dtype`; its gradients are einsums in `a`'s dtype accumulated in f32 too.
  `b` may be a float32 weight with a bf16 `a`: it is cast for the products, and its
  gradient leaves the f32 accumulator as it is (no round trip through bf16: one
  pass less over every weight gradient, and no bf16 rounding of it). Every index
  must appear in two of the three terms, or in all three (batch indices)."""
  lhs, rhs, out = _parse(spec)
  for c in set(lhs + rhs + out):
    if (c in lhs) + (c in rhs) + (c in out) < 2:
      raise ValueError(f"fast_einsum: index {c!r} of {spec!r} is in one term only")
  if b.dtype not in (a.dtype, jnp.float32):
    raise ValueError(f"fast_einsum: b must have a's dtype or float32, got {a.dtype} "
                     f"and {b.dtype}")
  return _einsum_f32(spec, a, b.astype(a.dtype)).astype(out_dtype)


def _fast_einsum_fwd(spec, a, b, out_dtype):
  return fast_einsum(spec, a, b, out_dtype), (a, b)


def _fast_einsum_bwd(spec, out_dtype, residuals, g):
  del out_dtype
  a, b = residuals
  lhs, rhs, out = _parse(spec)
  g = g.astype(a.dtype)  # with bf16 operands a bf16 cotangent, as torch autocast has
  da = _einsum_f32(f"{out},{rhs}->{lhs}", g, b.astype(a.dtype)).astype(a.dtype)
  db = _einsum_f32(f"{lhs},{out}->{rhs}", a, g).astype(b.dtype)
  return da, db


fast_einsum.defvjp(_fast_einsum_fwd, _fast_einsum_bwd)


def _fast_dot_general(lhs: Array, rhs: Array, dimension_numbers, precision=None,
                      preferred_element_type=None, *, dtype) -> Array:
  """Drop-in `dot_general` routing "[..., K] x [K, N]" products of a `dtype` input and
  a `dtype` or float32 weight to `fast_einsum`."""
  standard = (rhs.ndim == 2 and tuple(map(tuple, dimension_numbers[0])) == ((lhs.ndim - 1,), (0,))
              and not any(dimension_numbers[1]))
  if not (standard and lhs.dtype == dtype and rhs.dtype in (dtype, jnp.float32)):
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type)
  out_dtype = jnp.dtype(preferred_element_type or lhs.dtype)
  batch_shape = lhs.shape[:-1]
  # `rhs` may be a transpose (a tied output layer): the barrier keeps it from being
  # folded into the dot as a transposed (column-major) operand.
  y = fast_einsum("mk,kn->mn", lhs.reshape(-1, lhs.shape[-1]), lax.optimization_barrier(rhs),
                  out_dtype)
  return y.reshape(batch_shape + (rhs.shape[1],))


bf16_fast_dot_general = functools.partial(_fast_dot_general, dtype=jnp.bfloat16)
f32_fast_dot_general = functools.partial(_fast_dot_general, dtype=jnp.float32)
_FAST_MATMULS = (bf16_fast_dot_general, f32_fast_dot_general)


def takes_float32_weights(dot_general) -> bool:
  """Whether `dot_general` wants a layer's float32 kernel uncast (the fast matmuls)."""
  return dot_general in _FAST_MATMULS


def attention_einsum_for(dot_general) -> Optional[Callable[..., Array]]:
  """The attention products' einsum for a model whose projections use `dot_general`:
  `fast_einsum` with a fast matmul, else None (plain `jnp.einsum`, f32 logits)."""
  return fast_einsum if dot_general in _FAST_MATMULS else None


MATMULS: dict[str, Callable[..., Array]] = {
    "xla": lax.dot_general,
    "bf16_fast": bf16_fast_dot_general,
    "f32_fast": f32_fast_dot_general,
}
# The activation dtype each fast matmul is written for.
_FAST_DTYPE = {"bf16_fast": "bfloat16", "f32_fast": "float32"}


def check_matmul(matmul: str, dtype: str, *, owner: str) -> None:
  """Config validation shared by the model families."""
  if matmul not in MATMULS:
    raise ConfigError(f"{owner}.matmul must be one of {sorted(MATMULS)}, got {matmul!r}")
  if matmul in _FAST_DTYPE and dtype != _FAST_DTYPE[matmul]:
    raise ConfigError(f"{owner}.matmul={matmul!r} needs dtype={_FAST_DTYPE[matmul]!r}, "
                      f"got {dtype!r}")


def dot_general_for(matmul: str, override: Optional[Callable[..., Array]] = None):
  """The kernel a module uses: an explicit `override`, else the config's choice."""
  return override if override is not None else MATMULS[matmul]


def cpu_matmul_hint(matmul: str, dtype: str, backend: str) -> Optional[str]:
  """A log line for a CPU run on XLA's own matmuls: the option that runs its step faster."""
  fast = {"float32": "f32_fast", "bfloat16": "bf16_fast"}.get(dtype)
  if backend != "cpu" or matmul != "xla" or fast is None:
    return None
  return (f"matmul='xla' on a CPU: matmul='{fast}' trains the same {dtype} model on "
          f"XLA:CPU's fast kernels (README, 'Which precision to train with on a CPU'): "
          f"--gin.t5_1_1_config.matmul=\"'{fast}'\" (or t5_1_0_config, prost_config)")
