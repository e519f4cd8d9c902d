"""Decoding and scoring: cached steps equal teacher forcing; greedy equals a naive loop;
beam search, sampling and scores agree with each other."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.inference.beam_search import beam_search
from prosocial_jax.inference.decoding import (cast_params_for_decoding, decode_step, filter_logits,
                                           first_argmax, greedy_decode, init_decode_cache,
                                           sample_decode, step_module_for)
from prosocial_jax.inference.scoring import score
from prosocial_jax.models.t5 import Transformer, t5_1_1_config

VOCAB = 64


def micro_t5(**overrides):
  """Smaller than the `tiny` size: every test here compiles in about a second."""
  fields = dict(vocab_size=VOCAB, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
                num_encoder_layers=1, num_decoder_layers=2)
  return t5_1_1_config("tiny", **{**fields, **overrides})

MAX_LEN = 8


@pytest.fixture(scope="module")
def tiny():
  model = Transformer(micro_t5())
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


@pytest.fixture(scope="module")
def greedy_paths(tiny):
  """Greedy without EOS, and an EOS token on which rows end at different times."""
  model, params, _, enc = tiny
  # return_num_steps=True: the program test_greedy_equals_naive_loop compiles too.
  run = functools.partial(greedy_decode, model, params, enc, max_decode_length=MAX_LEN,
                          return_num_steps=True)
  free = np.asarray(run(eos_id=-1)[0])
  eos = next(int(t) for t in free[0] if t not in free[1])
  return free, eos, np.asarray(run(eos_id=eos)[0])


def test_beam_size_1_equals_greedy(tiny, greedy_paths):
  model, params, _, enc = tiny
  free, eos, ended = greedy_paths
  for eos_id, expected in ((-1, free), (eos, ended)):
    seqs, scores = beam_search(model, params, enc, beam_size=1, max_decode_length=MAX_LEN,
                               alpha=0.0, eos_id=eos_id)
    assert seqs.shape == (3, 1, MAX_LEN) and scores.shape == (3, 1)
    np.testing.assert_array_equal(seqs[:, 0], expected)


def test_beam_scores_are_length_penalised_log_likelihoods(tiny, greedy_paths):
  model, params, _, enc = tiny
  _, eos, _ = greedy_paths
  alpha = 0.6
  seqs, scores = beam_search(model, params, enc, beam_size=3, max_decode_length=MAX_LEN,
                             alpha=alpha, eos_id=eos)
  assert seqs.shape == (3, 3, MAX_LEN)
  assert (np.diff(np.asarray(scores), axis=1) <= 1e-6).all()  # best first
  flat_seqs = seqs.reshape(9, MAX_LEN)
  _, seq_logp = score(model, params, jnp.repeat(enc, 3, axis=0), flat_seqs)
  seqs = np.asarray(flat_seqs)
  lengths = np.where((seqs == eos).any(-1), np.argmax(seqs == eos, -1) + 1, MAX_LEN)
  for row, length in zip(seqs, lengths):  # nothing but padding after the end
    assert (row[length:] == 0).all() and (row[:length] != 0).all()
  expected = np.asarray(seq_logp) / ((5.0 + lengths) / 6.0) ** alpha
  np.testing.assert_allclose(np.asarray(scores).reshape(9), expected, rtol=1e-4, atol=1e-4)


def test_score_matches_teacher_forced_log_softmax(tiny):
  model, params, forward, enc = tiny
  tgt = jax.random.randint(jax.random.key(3), (3, MAX_LEN), 2, VOCAB, dtype=jnp.int32)
  tgt = tgt * (jnp.arange(MAX_LEN)[None] < jnp.array([[8], [5], [1]]))  # padded targets
  per_token, per_seq = score(model, params, enc, tgt)
  logits = forward(params, enc, jnp.pad(tgt[:, :-1], ((0, 0), (1, 0))), tgt)
  ref = jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1)[..., 0] * (tgt > 0)
  np.testing.assert_allclose(per_token, ref, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(per_seq, ref.sum(-1), atol=1e-4, rtol=1e-5)
  assert (np.asarray(per_token)[tgt == 0] == 0).all()


def test_sampling_is_reproducible_and_top_k_1_is_greedy(tiny, greedy_paths):
  model, params, _, enc = tiny
  free, _, _ = greedy_paths
  sample = functools.partial(sample_decode, model, params, enc, max_decode_length=MAX_LEN,
                             eos_id=-1, temperature=2.0)
  a, b = sample(jax.random.key(7)), sample(jax.random.key(7))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, sample(jax.random.key(8)))
  np.testing.assert_array_equal(sample(jax.random.key(9), top_k=1), free)


def test_filter_logits():
  logits = jnp.log(jnp.array([[0.5, 0.05, 0.3, 0.15]]))
  kept = lambda x: np.isfinite(np.asarray(x))[0].tolist()
  assert kept(filter_logits(logits, top_k=2)) == [True, False, True, False]
  assert kept(filter_logits(logits, top_p=0.75)) == [True, False, True, False]  # 0.5 + 0.3
  assert kept(filter_logits(logits, top_p=0.85)) == [True, False, True, True]
  assert kept(filter_logits(logits, top_p=0.4)) == [True, False, False, False]
  assert kept(filter_logits(logits)) == [True] * 4


def test_bf16_decoder_steps_stay_close_to_f32(tiny):
  model, params, forward, enc = tiny
  tgt = jax.random.randint(jax.random.key(4), (3, MAX_LEN), 2, VOCAB, dtype=jnp.int32)
  dec_in = jnp.pad(tgt[:, :-1], ((0, 0), (1, 0)))
  full = forward(params, enc, dec_in, tgt)
  bf16 = step_module_for(model, "bfloat16")
  assert bf16.config.dtype == "bfloat16" and bf16.config.matmul == "bf16_fast"
  assert step_module_for(model, None) is model

  @jax.jit
  def prefix_logits(params):  # f32 encoder, bf16 decoder steps over the whole prefix
    encoded, cache = init_decode_cache(model, params, enc, max_decode_length=MAX_LEN,
                                       step_module=bf16)
    step_params = cast_params_for_decoding(bf16, params)
    return decode_step(bf16, step_params, cache, encoded, enc, dec_in,
                       max_decode_length=MAX_LEN)[0]
  got = prefix_logits(params)
  assert got.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(got - full))) < 0.05 * float(jnp.max(jnp.abs(full)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_first_argmax_is_argmax_with_ties_infinities_and_nans(dtype):
  logits = jax.random.normal(jax.random.key(0), (9, 1000)).astype(dtype)
  logits = (logits.at[1, 7].set(9.0).at[1, 3].set(9.0)        # a tie: the first wins
            .at[2].set(1.0)                                    # all equal
            .at[3, 500].set(jnp.inf).at[3, 900].set(jnp.inf)  # +inf twice
            .at[4].set(-jnp.inf)                               # all -inf
            .at[5, 600].set(jnp.nan).at[5, 40].set(jnp.nan)    # NaNs: the first NaN
            .at[6, 999].set(jnp.inf).at[6, 0].set(-jnp.inf)    # +inf beside -inf
            .at[7, 999].set(50.0))                             # the last column
  want = np.asarray(jnp.argmax(logits, axis=-1))
  assert want[[1, 2, 3, 4, 5, 6, 7]].tolist() == [3, 0, 500, 0, 40, 999, 999]
  got = jax.jit(first_argmax)(logits)
  assert got.dtype == jnp.int32
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(jax.jit(first_argmax)(logits[:, None, :]), want[:, None])
