"""KV-cache decoding: cached steps equal teacher forcing; greedy equals a naive loop."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models.decoding import decode_step, greedy_decode, init_decode_cache
from prosocial_jax.models.t5 import Transformer, t5_1_1_config

VOCAB = 64
MAX_LEN = 8


@pytest.fixture(scope="module")
def tiny():
  model = Transformer(t5_1_1_config("tiny", vocab_size=VOCAB))
  tokens = jnp.ones((2, 6), jnp.int32)
  # Plain (unboxed) params: decoding must accept them as well as boxed ones.
  params = nn.unbox(jax.jit(functools.partial(model.init, enable_dropout=False))(
      jax.random.key(0), tokens, tokens, tokens)["params"])
  forward = jax.jit(lambda p, *args: model.apply({"params": p}, *args, enable_dropout=False))
  # Encoder inputs with different amounts of padding per row.
  enc = jax.random.randint(jax.random.key(1), (3, 7), 2, VOCAB, dtype=jnp.int32)
  enc = enc * (jnp.arange(7)[None] < jnp.array([[7], [5], [2]]))
  return model, params, forward, enc


def naive_greedy(forward, params, enc, *, max_len, eos_id):
  """Reference: a full teacher-forced pass per step, no cache."""
  batch = enc.shape[0]
  out = np.zeros((batch, max_len), np.int32)
  ended = np.zeros(batch, bool)
  ones = jnp.ones((batch, max_len), jnp.int32)  # no target padding: every position is real
  for i in range(max_len):
    dec_in = np.zeros((batch, max_len), np.int32)
    dec_in[:, 1:i + 1] = out[:, :i]
    token = np.asarray(jnp.argmax(forward(params, enc, jnp.asarray(dec_in), ones)[:, i], -1))
    token = np.where(ended, 0, token)
    out[:, i] = token
    ended |= token == eos_id
    if ended.all():
      break
  return out


def test_cached_steps_equal_teacher_forced_logits(tiny):
  model, params, forward, enc = tiny
  tgt = jax.random.randint(jax.random.key(2), (3, MAX_LEN), 2, VOCAB, dtype=jnp.int32)
  dec_in = jnp.pad(tgt[:, :-1], ((0, 0), (1, 0)))
  full = forward(params, enc, dec_in, tgt)  # [batch, MAX_LEN, vocab]

  init = jax.jit(functools.partial(init_decode_cache, model, max_decode_length=MAX_LEN))
  step = jax.jit(functools.partial(decode_step, model, max_decode_length=MAX_LEN))
  encoded, cache = init(params, enc)
  # A 3-token prefix in one call, then one token per call.
  logits, cache = step(params, cache, encoded, enc, dec_in[:, :3])
  per_step = [logits]
  for i in range(3, MAX_LEN):
    logits, cache = step(params, cache, encoded, enc, dec_in[:, i:i + 1])
    per_step.append(logits)
  cached = jnp.concatenate(per_step, axis=1)
  assert cached.dtype == jnp.float32
  np.testing.assert_allclose(cached, full, atol=1e-5, rtol=1e-5)
  assert int(cache["decoder"]["decode_index"]) == MAX_LEN


def test_greedy_equals_naive_loop(tiny):
  model, params, forward, enc = tiny
  # No EOS ever: full-length greedy trajectories.
  free = naive_greedy(forward, params, enc, max_len=MAX_LEN, eos_id=-1)
  got, _ = greedy_decode(model, params, enc, max_decode_length=MAX_LEN, eos_id=-1,
                         return_num_steps=True)
  assert got.dtype == jnp.int32 and got.shape == (3, MAX_LEN)
  np.testing.assert_array_equal(got, free)

  # Pick as EOS a token row 0 emits but row 1 never does: rows end at different times.
  eos = next((int(t) for t in free[0] if t not in free[1]), None)
  assert eos is not None, free
  expected = naive_greedy(forward, params, enc, max_len=MAX_LEN, eos_id=eos)
  got, _ = greedy_decode(model, params, enc, max_decode_length=MAX_LEN, eos_id=eos,
                         return_num_steps=True)
  np.testing.assert_array_equal(got, expected)
  end = int(np.argmax(expected[0] == eos))
  assert expected[0, end] == eos and (expected[0, end + 1:] == 0).all()
  assert (expected[1] != 0).all()  # row 1 never ended


def test_stops_early_when_all_rows_end(tiny):
  model, params, _, enc = tiny
  eos = 5
  # Make every decoder step predict EOS: the decoder layers add nothing to the
  # residual stream, every embedding is the same vector, so the final hidden
  # state is constant and the output layer maps it onto EOS only.
  def force_eos(path, x):
    keys = [k.key for k in path]
    if keys[0] == "decoder" and keys[-2] in ("out", "wo"):
      return jnp.zeros_like(x)
    if keys[0] == "token_embedder":
      return jnp.ones_like(x)
    if keys[-2] == "logits_dense":
      return jnp.zeros_like(x).at[:, eos].set(1.0)
    return x
  forced = jax.tree_util.tree_map_with_path(force_eos, params)
  tokens, steps = greedy_decode(model, forced, enc, max_decode_length=MAX_LEN, eos_id=eos,
                                return_num_steps=True)
  assert int(steps) == 1
  expected = np.zeros((3, MAX_LEN), np.int32)
  expected[:, 0] = eos
  np.testing.assert_array_equal(tokens, expected)

  _, steps = greedy_decode(model, params, enc, max_decode_length=MAX_LEN, eos_id=-1,
                           return_num_steps=True)
  assert int(steps) == MAX_LEN
