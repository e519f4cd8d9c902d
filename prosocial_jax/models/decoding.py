"""Autoregressive decoding with the KV cache (greedy now; beam / sampling beside it).

Building blocks, shared by every search strategy:
* `init_decode_cache`: runs the encoder once and builds the decoder cache
  (cross-attention keys/values projected once; self-attention caches zeroed).
* `decode_step`: feeds the next token(s) and returns float32 logits plus the
  updated cache.
The cache is a pytree whose leaves all lead with the batch dimension except
`decoder/decode_index` (a scalar): beam search can tile / gather it along batch.

Works with any module exposing T5X's `encode` / `decode(..., decode=True,
max_decode_length=...)` methods (`prosocial_jax.models.t5.Transformer`).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
PyTree = Any


def _variables(params: PyTree) -> dict:
  """Accepts the params tree or a `{"params": ...}` variables dict (boxed or not)."""
  if isinstance(params, Mapping) and set(params.keys()) == {"params"}:
    return {"params": params["params"]}
  return {"params": params}


def init_decode_cache(module: nn.Module, params: PyTree, encoder_input_tokens: Array, *,
                      max_decode_length: int) -> tuple[Array, PyTree]:
  """Encodes once and creates the cache. Returns (encoded [batch, len, embed], cache)."""
  variables = _variables(params)
  encoded = module.apply(variables, encoder_input_tokens, enable_dropout=False, method="encode")
  # A one-token call creates the cache: cross-attention K/V are filled from
  # `encoded`, self-attention K/V are zeros of length max_decode_length. Its
  # logits are discarded and the decode index stays at 0.
  dummy = jnp.zeros((encoder_input_tokens.shape[0], 1), jnp.int32)
  _, state = module.apply(variables, encoded, encoder_input_tokens, dummy, dummy,
                          enable_dropout=False, decode=True,
                          max_decode_length=max_decode_length, mutable=["cache"],
                          method="decode")
  return encoded, state["cache"]


def decode_step(module: nn.Module, params: PyTree, cache: PyTree, encoded: Array,
                encoder_input_tokens: Array, decoder_tokens: Array, *,
                max_decode_length: int) -> tuple[Array, PyTree]:
  """Feeds decoder_tokens [batch, n] at the cache's next position(s).

  Returns (float32 logits [batch, n, vocab], new cache). `encoded` is not
  re-projected (the cache holds its keys/values); it is passed for the shapes.
  """
  variables = dict(_variables(params), cache=cache)
  logits, state = module.apply(variables, encoded, encoder_input_tokens, decoder_tokens,
                               decoder_tokens, enable_dropout=False, decode=True,
                               max_decode_length=max_decode_length, mutable=["cache"],
                               method="decode")
  return logits, state["cache"]


class _GreedyState(NamedTuple):
  step: Array     # [] int32, number of tokens generated so far
  tokens: Array   # [batch, max_decode_length] int32 output, 0 past the end
  last: Array     # [batch, 1] int32, the token fed at this step
  ended: Array    # [batch] bool, the row has produced EOS
  cache: PyTree


@functools.partial(jax.jit, static_argnames=("module", "max_decode_length", "return_num_steps"))
def greedy_decode(module: nn.Module, params: PyTree, encoder_input_tokens: Array, *,
                  max_decode_length: int, eos_id: int = 1, decoder_start_id: int = 0,
                  return_num_steps: bool = False):
  """Greedy (argmax) decoding, jitted.

  `module`, `max_decode_length` and `return_num_steps` are static (a new value
  compiles again); `eos_id` and `decoder_start_id` are traced, so changing them
  does not.

  Args:
    module: e.g. `Transformer(config)` (hashable, so a static jit argument).
    params: its parameters (boxed with logical axes or plain).
    encoder_input_tokens: [batch, input_len] int32, 0 = padding.
    max_decode_length: number of tokens to generate at most (the cache length).
    eos_id: a row ends after emitting this token; the EOS itself is kept.
    decoder_start_id: the first decoder input (T5: 0, the pad id).
    return_num_steps: also return the number of decoder steps run.

  Returns:
    tokens [batch, max_decode_length] int32 (0 after a row's EOS), and with
    `return_num_steps` the steps run (< max_decode_length when all rows ended).
  """
  batch = encoder_input_tokens.shape[0]
  encoded, cache = init_decode_cache(module, params, encoder_input_tokens,
                                     max_decode_length=max_decode_length)
  step_fn = functools.partial(decode_step, module, params, encoded=encoded,
                              encoder_input_tokens=encoder_input_tokens,
                              max_decode_length=max_decode_length)

  def cond(s: _GreedyState):
    return (s.step < max_decode_length) & ~jnp.all(s.ended)

  def body(s: _GreedyState):
    logits, cache = step_fn(s.cache, decoder_tokens=s.last)  # [batch, 1, vocab]
    token = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)  # [batch]
    token = jnp.where(s.ended, 0, token)
    tokens = lax.dynamic_update_slice(s.tokens, token[:, None], (0, s.step))
    return _GreedyState(s.step + 1, tokens, token[:, None], s.ended | (token == eos_id), cache)

  init = _GreedyState(
      step=jnp.zeros((), jnp.int32),
      tokens=jnp.zeros((batch, max_decode_length), jnp.int32),
      last=jnp.full((batch, 1), decoder_start_id, jnp.int32),
      ended=jnp.zeros((batch,), bool),
      cache=cache)
  final = lax.while_loop(cond, body, init)
  return (final.tokens, final.step) if return_num_steps else final.tokens
