"""Beam search over the KV cache, with a length penalty and EOS handling (jitted).

Each row keeps `beam_size` live hypotheses and up to `beam_size` finished ones.
At every step the live beams' next-token log-probabilities give
`beam_size * vocab` candidates; the best `2 * beam_size` are split into those
that end (EOS: scored and merged into the finished set) and those that go on
(the best `beam_size` of them become the new live beams, their KV caches
gathered from their parents). Scores are GNMT's: log p / ((5 + length) / 6)^alpha.

A row is done when its `beam_size` finished hypotheses all score at least what
its best live beam could still reach (its log-probability can only fall, and the
penalty grows at most to that of `max_decode_length`); the loop stops when
every row is done or the length is reached. Rows that finish fewer than
`beam_size` hypotheses are filled with their live beams (cut at the length),
ranked after every finished one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from prosocial_jax.inference.decoding import (decode_step, init_decode_cache, resolve_step_params,
                                           step_module_for)

Array = jax.Array
PyTree = Any

_NEG_INF = -1.0e9  # finite, so that sums and comparisons stay well defined


def length_penalty(length, alpha):
  """GNMT length normalisation ((5 + length) / 6) ** alpha; alpha 0 -> 1."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _gather_beams(x: Array, index: Array) -> Array:
  """x [batch, beams, ...], index [batch, new_beams] -> [batch, new_beams, ...]."""
  return jax.vmap(lambda row, i: row[i])(x, index)


def _cache_gather(cache: PyTree, index: Array, beam_size: int) -> PyTree:
  """Reorders every [batch * beams, ...] cache leaf by `index` [batch, beams]."""
  def gather(leaf):
    if leaf.ndim == 0:  # decode_index: shared by all beams
      return leaf
    beams = leaf.reshape((-1, beam_size) + leaf.shape[1:])
    return _gather_beams(beams, index).reshape(leaf.shape)
  return jax.tree.map(gather, cache)


class _BeamState(NamedTuple):
  step: Array        # [] int32, tokens generated so far
  live_seqs: Array   # [batch, beams, length] int32
  live_logp: Array   # [batch, beams] float32, log p of each live beam
  fin_seqs: Array    # [batch, beams, length] int32
  fin_scores: Array  # [batch, beams] float32, length-penalised; _NEG_INF = empty slot
  cache: PyTree      # leaves [batch * beams, ...]


@functools.partial(jax.jit, static_argnames=("module", "beam_size", "max_decode_length",
                                             "step_dtype"))
def beam_search(module: nn.Module, params: PyTree, encoder_input_tokens: Array, *,
                beam_size: int, max_decode_length: int, alpha: float = 0.6, eos_id: int = 1,
                decoder_start_id: int = 0, step_dtype: Optional[str] = None,
                step_params: Optional[PyTree] = None) -> tuple[Array, Array]:
  """Beam search decoding.

  Args:
    module, params, encoder_input_tokens, max_decode_length, eos_id,
      decoder_start_id, step_dtype, step_params: as `decoding.greedy_decode`.
    beam_size: beams per row (static).
    alpha: length-penalty exponent (traced); 0 ranks by plain log-likelihood.

  Returns:
    sequences [batch, beam_size, max_decode_length] int32, best first, each
    ending with EOS when it finished (0 after it), and their scores
    [batch, beam_size] float32 (log p / length penalty).
  """
  batch, k, length = encoder_input_tokens.shape[0], beam_size, max_decode_length
  step_module = step_module_for(module, step_dtype, step_params)
  encoded, cache = init_decode_cache(module, params, encoder_input_tokens,
                                     max_decode_length=length, step_module=step_module)
  params = resolve_step_params(step_module, params, step_params)
  tile = lambda x: x if x.ndim == 0 else jnp.repeat(x, k, axis=0)  # row-major: [b0 beams, b1...]
  encoded, enc_tokens, cache = tile(encoded), tile(encoder_input_tokens), jax.tree.map(tile, cache)
  step_fn = functools.partial(decode_step, step_module, params, encoded=encoded,
                              encoder_input_tokens=enc_tokens, max_decode_length=length)
  max_penalty = length_penalty(length, alpha)

  def done(s: _BeamState):
    best_possible = s.live_logp[:, 0] / max_penalty  # live beams are kept sorted
    return s.fin_scores[:, -1] >= best_possible       # the worst finished one still wins

  def cond(s: _BeamState):
    return (s.step < length) & ~jnp.all(done(s))

  def body(s: _BeamState):
    last = lax.dynamic_slice_in_dim(s.live_seqs, s.step - 1, 1, axis=2)  # [batch, beams, 1]
    last = jnp.where(s.step == 0, decoder_start_id, last).reshape(batch * k, 1)
    logits, cache = step_fn(s.cache, decoder_tokens=last)  # [batch * beams, 1, vocab]
    vocab = logits.shape[-1]
    logp = jax.nn.log_softmax(logits[:, 0].astype(jnp.float32)).reshape(batch, k, vocab)
    candidates = (s.live_logp[..., None] + logp).reshape(batch, k * vocab)
    cand_logp, flat = lax.top_k(candidates, 2 * k)        # [batch, 2k]
    parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
    seqs = _gather_beams(s.live_seqs, parent)             # [batch, 2k, length]
    seqs = lax.dynamic_update_slice_in_dim(seqs, token[..., None], s.step, axis=2)
    ended = token == eos_id

    # Finished: merge the new EOS candidates into the best `k` so far.
    new_scores = jnp.where(ended, cand_logp / length_penalty(s.step + 1, alpha), _NEG_INF)
    all_scores = jnp.concatenate([s.fin_scores, new_scores], axis=1)
    all_seqs = jnp.concatenate([s.fin_seqs, seqs], axis=1)
    fin_scores, keep = lax.top_k(all_scores, k)
    fin_seqs = _gather_beams(all_seqs, keep)

    # Live: the best `k` candidates that did not end.
    live_logp, keep = lax.top_k(jnp.where(ended, _NEG_INF, cand_logp), k)
    live_seqs = _gather_beams(seqs, keep)
    cache = _cache_gather(cache, jnp.take_along_axis(parent, keep, axis=1), k)
    return _BeamState(s.step + 1, live_seqs, live_logp, fin_seqs, fin_scores, cache)

  # Only beam 0 is live at the start (the others would duplicate it).
  live_logp = jnp.tile(jnp.array([0.0] + [_NEG_INF] * (k - 1), jnp.float32), (batch, 1))
  init = _BeamState(
      step=jnp.zeros((), jnp.int32),
      live_seqs=jnp.zeros((batch, k, length), jnp.int32),
      live_logp=live_logp,
      fin_seqs=jnp.zeros((batch, k, length), jnp.int32),
      fin_scores=jnp.full((batch, k), _NEG_INF, jnp.float32),
      cache=cache)
  final = lax.while_loop(cond, body, init)

  # Fill empty finished slots with live beams (cut at the length), after every finished one.
  live_scores = final.live_logp / length_penalty(final.step, alpha)
  fin_rank = jnp.where(final.fin_scores > _NEG_INF, final.fin_scores, -jnp.inf)  # empty: last
  rank = jnp.concatenate([fin_rank, live_scores + _NEG_INF], axis=1)
  scores = jnp.concatenate([final.fin_scores, live_scores], axis=1)
  seqs = jnp.concatenate([final.fin_seqs, final.live_seqs], axis=1)
  _, best = lax.top_k(rank, k)
  return _gather_beams(seqs, best), jnp.take_along_axis(scores, best, axis=1)
