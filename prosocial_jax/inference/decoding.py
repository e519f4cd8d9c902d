"""Autoregressive decoding with the KV cache: greedy and temperature / top-k / top-p sampling.

(Beam search is in `beam_search`, log-likelihood scoring in `scoring`.)

Building blocks, shared by every search strategy:
* `init_decode_cache`: runs the encoder once and builds the decoder cache
  (cross-attention keys/values projected once; self-attention caches zeroed).
* `decode_step`: feeds the next token(s) and returns float32 logits plus the
  updated cache.
The cache is a pytree whose leaves all lead with the batch dimension except
`decoder/decode_index` (a scalar): beam search can tile / gather it along batch.

Works with any module exposing T5X's `encode` / `decode(..., decode=True,
max_decode_length=...)` methods (`encdec.EncoderDecoder`: T5 and Prost).
For a bf16 model the projection kernels are cast to bf16 once, before the loop,
rather than at every step (the layers cast them anyway: same numbers).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from prosocial_jax.models.packed import PackedKernel

Array = jax.Array
PyTree = Any


def as_variables(params: PyTree) -> dict:
  """Accepts the params tree or a `{"params": ...}` variables dict (boxed or not)."""
  if isinstance(params, Mapping) and set(params.keys()) == {"params"}:
    return {"params": params["params"]}
  return {"params": params}


def cast_params_for_decoding(module: nn.Module, params: PyTree) -> PyTree:
  """Kernels and embeddings in the module's activation dtype (a no-op for float32).

  The layers cast exactly these leaves to the activation dtype at use; casting
  once up front keeps a bf16 decode loop from converting every weight per step.
  """
  config = getattr(module, "config", None)
  dtype = jnp.dtype(getattr(config, "dtype", "float32"))
  if dtype == jnp.float32:
    return params

  def cast(path, leaf):
    name = getattr(path[-1], "key", None)
    return leaf.astype(dtype) if name in ("kernel", "embedding") else leaf
  return jax.tree_util.tree_map_with_path(cast, nn.unbox(params))


def resolve_step_params(step_module: nn.Module, params: PyTree,
                        step_params: Optional[PyTree]) -> PyTree:
  """The weights the decoder steps read: `step_params` when given (e.g.
  `packed.pack_params(params, "int8")`, made once and reused across calls),
  else `params` cast for `step_module`."""
  if step_params is not None:
    return nn.unbox(step_params)
  return cast_params_for_decoding(step_module, params)


def step_module_for(module: nn.Module, step_dtype: Optional[str],
                    step_params: Optional[PyTree] = None) -> nn.Module:
  """The module the decoder steps run: `module` itself, or a copy whose config has
  activation dtype `step_dtype` ("bfloat16" also selects the `bf16_fast` matmul).

  Autoregressive steps at small batch are bound by reading the weights, so bf16
  weights nearly halve a step even where bf16 matmuls are not faster (CPUs
  without AMX), while the encoder, one big matmul-bound pass, keeps the model's
  own precision.

  With int8 `step_params` and no `step_dtype` the steps run in float32: the int8
  product quantizes its input and returns float32 whatever the activations are,
  so bf16 ones only add casts and a bf16 KV cache that XLA:CPU copies at each
  update (a bf16 T5-small generating 32 tokens at batch 8: 0.267 → 0.245 s).
  """
  config = module.config
  if step_dtype is None and _has_int8_kernels(step_params):
    step_dtype = "float32"
  if step_dtype is None or step_dtype == config.dtype:
    return module
  matmul = "bf16_fast" if step_dtype == "bfloat16" else "xla"
  # Cached steps never take the fused attention kernel (it is for whole sequences, bf16).
  return module.clone(config=dataclasses.replace(config, dtype=step_dtype, matmul=matmul,
                                                 attention_kernel="xla"))


def _has_int8_kernels(step_params: Optional[PyTree]) -> bool:
  if step_params is None:
    return False
  kernels = jax.tree.leaves(step_params, is_leaf=lambda x: isinstance(x, PackedKernel))
  return any(isinstance(k, PackedKernel) and k.values.dtype == jnp.int8 for k in kernels)


def init_decode_cache(module: nn.Module, params: PyTree, encoder_input_tokens: Array, *,
                      max_decode_length: int,
                      step_module: Optional[nn.Module] = None) -> tuple[Array, PyTree]:
  """Encodes once (with `module`) and creates the cache of `step_module` (default:
  `module`), the module that will run the steps. Returns (encoded [batch, len,
  embed], cache)."""
  encoded = module.apply(as_variables(params), encoder_input_tokens, enable_dropout=False,
                         method="encode")
  step_module = step_module or module
  # A one-token call creates the cache: cross-attention K/V are filled from
  # `encoded`, self-attention K/V are zeros of length max_decode_length. Its
  # logits are discarded and the decode index stays at 0.
  dummy = jnp.zeros((encoder_input_tokens.shape[0], 1), jnp.int32)
  _, state = step_module.apply(
      as_variables(cast_params_for_decoding(step_module, params)), encoded,
      encoder_input_tokens, dummy, dummy, enable_dropout=False, decode=True,
      max_decode_length=max_decode_length, mutable=["cache"], method="decode")
  return encoded, state["cache"]


def decode_step(module: nn.Module, params: PyTree, cache: PyTree, encoded: Array,
                encoder_input_tokens: Array, decoder_tokens: Array, *,
                max_decode_length: int) -> tuple[Array, PyTree]:
  """Feeds decoder_tokens [batch, n] at the cache's next position(s).

  Returns (float32 logits [batch, n, vocab], new cache). `encoded` is not
  re-projected (the cache holds its keys/values); it is passed for the shapes.
  """
  variables = dict(as_variables(params), cache=cache)
  logits, state = module.apply(variables, encoded, encoder_input_tokens, decoder_tokens,
                               decoder_tokens, enable_dropout=False, decode=True,
                               max_decode_length=max_decode_length, mutable=["cache"],
                               method="decode")
  return logits, state["cache"]


class _LoopState(NamedTuple):
  step: Array     # [] int32, number of tokens generated so far
  tokens: Array   # [batch, max_decode_length] int32 output, 0 past the end
  last: Array     # [batch, 1] int32, the token fed at this step
  ended: Array    # [batch] bool, the row has produced EOS
  cache: PyTree


def first_argmax(logits: Array) -> Array:
  """`jnp.argmax(logits, axis=-1)` as int32: the first of equal maxima, and for a row
  with a NaN its first NaN. Taken as plain reductions (max, then the lowest index
  holding it) because XLA:CPU runs argmax's variadic (value, index) reduce several
  times slower: 0.5 ms of each greedy step of T5's 32k vocabulary at batch 8. A
  row that may hold a NaN (its float32 sum is NaN: also +inf beside -inf) takes
  `jnp.argmax` itself."""
  size = logits.shape[-1]
  top = jnp.max(logits, axis=-1, keepdims=True)
  index = lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  first = jnp.min(jnp.where(logits == top, index, size), axis=-1)
  unsure = jnp.any(first == size) | jnp.any(jnp.isnan(jnp.sum(logits, -1, dtype=jnp.float32)))
  return lax.cond(unsure, lambda: jnp.argmax(logits, axis=-1).astype(jnp.int32),
                  lambda: first)


def _decode_loop(module: nn.Module, params: PyTree, encoder_input_tokens: Array,
                 choose: Callable[[Array, Array], Array], *, max_decode_length: int,
                 eos_id, decoder_start_id, step_dtype: Optional[str],
                 step_params: Optional[PyTree]):
  """One token per step, `choose(logits [batch, vocab], step) -> [batch]`, until every
  row has emitted EOS or `max_decode_length` tokens. Returns (tokens, steps run)."""
  batch = encoder_input_tokens.shape[0]
  step_module = step_module_for(module, step_dtype, step_params)
  encoded, cache = init_decode_cache(module, params, encoder_input_tokens,
                                     max_decode_length=max_decode_length,
                                     step_module=step_module)
  params = resolve_step_params(step_module, params, step_params)
  step_fn = functools.partial(decode_step, step_module, params, encoded=encoded,
                              encoder_input_tokens=encoder_input_tokens,
                              max_decode_length=max_decode_length)

  def cond(s: _LoopState):
    return (s.step < max_decode_length) & ~jnp.all(s.ended)

  def body(s: _LoopState):
    logits, cache = step_fn(s.cache, decoder_tokens=s.last)  # [batch, 1, vocab]
    token = choose(logits[:, -1], s.step).astype(jnp.int32)  # [batch]
    token = jnp.where(s.ended, 0, token)
    tokens = lax.dynamic_update_slice(s.tokens, token[:, None], (0, s.step))
    return _LoopState(s.step + 1, tokens, token[:, None], s.ended | (token == eos_id), cache)

  init = _LoopState(
      step=jnp.zeros((), jnp.int32),
      tokens=jnp.zeros((batch, max_decode_length), jnp.int32),
      last=jnp.full((batch, 1), decoder_start_id, jnp.int32),
      ended=jnp.zeros((batch,), bool),
      cache=cache)
  final = lax.while_loop(cond, body, init)
  return final.tokens, final.step


@functools.partial(jax.jit, static_argnames=("module", "max_decode_length", "return_num_steps",
                                             "step_dtype"))
def greedy_decode(module: nn.Module, params: PyTree, encoder_input_tokens: Array, *,
                  max_decode_length: int, eos_id: int = 1, decoder_start_id: int = 0,
                  return_num_steps: bool = False, step_dtype: Optional[str] = None,
                  step_params: Optional[PyTree] = None):
  """Greedy (argmax) decoding, jitted.

  `module`, `max_decode_length` and `return_num_steps` are static (a new value
  compiles again); `eos_id` and `decoder_start_id` are traced, so changing them
  does not.

  Args:
    module: e.g. `t5.Transformer(config)` (hashable, so a static jit argument).
    params: its parameters (boxed with logical axes or plain).
    encoder_input_tokens: [batch, input_len] int32, 0 = padding.
    max_decode_length: number of tokens to generate at most (the cache length).
    eos_id: a row ends after emitting this token; the EOS itself is kept.
    decoder_start_id: the first decoder input (T5: 0, the pad id).
    return_num_steps: also return the number of decoder steps run.
    step_dtype: run the decoder steps in this activation dtype (e.g. "bfloat16":
      bf16 weights, see `step_module_for`); None: the model's own (float32 with
      int8 `step_params`).
    step_params: the weights the decoder steps read instead of `params`, e.g.
      `packed.pack_params(params, "int8")` (packed once, passed to every call;
      the encoder and the cross-attention keys/values still use `params`).

  Returns:
    tokens [batch, max_decode_length] int32 (0 after a row's EOS), and with
    `return_num_steps` the steps run (< max_decode_length when all rows ended).
  """
  tokens, steps = _decode_loop(module, params, encoder_input_tokens,
                               lambda logits, step: first_argmax(logits),
                               max_decode_length=max_decode_length, eos_id=eos_id,
                               decoder_start_id=decoder_start_id, step_dtype=step_dtype,
                               step_params=step_params)
  return (tokens, steps) if return_num_steps else tokens


def filter_logits(logits: Array, *, top_k: int = 0, top_p: float = 1.0) -> Array:
  """Keeps the `top_k` largest logits (0: all) and the smallest set whose
  probability reaches `top_p` (nucleus; 1.0: all); the rest become -inf.
  logits [..., vocab] float32."""
  if top_k:
    kth = lax.top_k(logits, top_k)[0][..., -1:]  # [..., 1]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]  # descending
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each token
    # The most likely token always survives; a token stays while the mass above it < top_p.
    keep = (before < top_p).at[..., 0].set(True)
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


@functools.partial(jax.jit, static_argnames=("module", "max_decode_length", "top_k", "top_p",
                                             "return_num_steps", "step_dtype"))
def sample_decode(module: nn.Module, params: PyTree, encoder_input_tokens: Array, rng: Array, *,
                  max_decode_length: int, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0, eos_id: int = 1, decoder_start_id: int = 0,
                  return_num_steps: bool = False, step_dtype: Optional[str] = None,
                  step_params: Optional[PyTree] = None):
  """Ancestral sampling with temperature, top-k and top-p (nucleus) filtering, jitted.

  Same contract as `greedy_decode`, plus: `rng` (a `jax.random.key`; the same
  key gives the same samples), `temperature` > 0 (traced), `top_k` (0 = off) and
  `top_p` (1.0 = off), both static. Filtering is applied after the temperature.
  """
  def choose(logits, step):
    logits = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
    return jax.random.categorical(jax.random.fold_in(rng, step), logits, axis=-1)

  tokens, steps = _decode_loop(module, params, encoder_input_tokens, choose,
                               max_decode_length=max_decode_length, eos_id=eos_id,
                               decoder_start_id=decoder_start_id, step_dtype=step_dtype,
                               step_params=step_params)
  return (tokens, steps) if return_num_steps else tokens
