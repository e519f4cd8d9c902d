"""Packed inference kernels: the [out, in] float layouts equal the plain model, int8
stays within its rounding error, and every decoder accepts packed step weights."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.inference.beam_search import beam_search
from prosocial_jax.inference.decoding import (decode_step, greedy_decode, init_decode_cache,
                                           sample_decode, step_module_for)
from prosocial_jax.inference.packed_weights import pack_params
from prosocial_jax.models.packed import PackedKernel, pack_kernel
from prosocial_jax.models.prost import Transformer as ProstTransformer
from prosocial_jax.models.prost import prost_config
from prosocial_jax.models.t5 import Transformer, t5_1_0_config, t5_1_1_config

VOCAB = 64
MAX_LEN = 6
SMALL = dict(vocab_size=VOCAB, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
             num_encoder_layers=1, num_decoder_layers=2)


def init_params(model):
  tokens = jnp.ones((2, MAX_LEN), jnp.int32)
  return nn.unbox(jax.jit(functools.partial(model.init, enable_dropout=False))(
      jax.random.key(0), tokens, tokens, tokens)["params"])


@pytest.fixture(scope="module")
def t5():
  model = Transformer(t5_1_1_config("tiny", **SMALL))
  enc = jax.random.randint(jax.random.key(1), (3, 7), 2, VOCAB, dtype=jnp.int32)
  enc = enc * (jnp.arange(7)[None] < jnp.array([[7], [5], [2]]))  # ragged padding
  return model, init_params(model), enc


def prefix_logits(model, params, weights, enc):
  """Decoder-step logits over a fixed 6-token prefix with the plain weights and with
  `pack_params(params, weights)` (f32 encoder in both), from one compiled function."""
  tgt = jax.random.randint(jax.random.key(4), (enc.shape[0], MAX_LEN), 2, VOCAB, jnp.int32)
  dec_in = jnp.pad(tgt[:, :-1], ((0, 0), (1, 0)))

  @jax.jit
  def run(params, step_params):
    encoded, cache = init_decode_cache(model, params, enc, max_decode_length=MAX_LEN)
    step = functools.partial(decode_step, model, cache=cache, encoded=encoded,
                             encoder_input_tokens=enc, decoder_tokens=dec_in,
                             max_decode_length=MAX_LEN)
    return step(params)[0], step(step_params)[0]
  if isinstance(weights, str):
    weights = pack_params(params, weights, tied_output_embedding=model.tied_output_embedding)
  return run(params, weights)


def test_pack_kernel_layouts_and_errors():
  kernel = jax.random.normal(jax.random.key(0), (24, 40))  # [in, out]
  x = jax.random.normal(jax.random.key(1), (3, 5, 24))
  exact = x @ kernel
  f32 = pack_kernel(kernel, "float32")
  assert f32.values.shape == (40, 24) and f32.scale is None
  np.testing.assert_allclose(f32.project(x, jnp.float32), exact, rtol=1e-5, atol=1e-5)
  bf16 = pack_kernel(kernel, "bfloat16")
  assert bf16.values.dtype == jnp.bfloat16
  np.testing.assert_allclose(bf16.project(x, jnp.float32), exact, atol=0.1)
  q = pack_kernel(kernel, "int8")
  assert q.values.dtype == jnp.int8 and q.scale.shape == (40,)
  # Per-channel weights and per-row activations each lose at most half a step of 1/127.
  err = float(jnp.max(jnp.abs(q.project(x, jnp.float32) - exact)))
  assert 0 < err < 0.02 * float(jnp.max(jnp.abs(exact)))
  # A zero weight column and an all-zero input row stay exactly zero (no 0/0).
  zero = pack_kernel(kernel.at[:, 3].set(0.0), "int8")
  out = zero.project(x.at[0, 0].set(0.0), jnp.float32)
  assert bool(jnp.all(jnp.isfinite(out))) and float(jnp.abs(out[..., 3]).max()) == 0.0
  assert float(jnp.abs(out[0, 0]).max()) == 0.0
  with pytest.raises(ValueError, match="one of"):
    pack_kernel(kernel, "fp8")
  with pytest.raises(ValueError, match=r"inputs \[\.\.\., 24\]"):
    f32.project(jnp.ones((2, 23)), jnp.float32)


def test_pack_params_packs_kernels_only(t5):
  model, params, _ = t5
  boxed = jax.jit(functools.partial(model.init, enable_dropout=False))(
      jax.random.key(0), *(jnp.ones((2, 4), jnp.int32),) * 3)["params"]
  packed = pack_params(boxed, "int8")  # boxed trees are accepted
  is_packed = lambda x: isinstance(x, PackedKernel)
  leaves = jax.tree_util.tree_flatten_with_path(packed, is_leaf=is_packed)[0]
  names = {"/".join(p.key for p in path): leaf for path, leaf in leaves}
  kernels = [n for n in names if n.endswith("/kernel")]
  assert kernels and all(is_packed(names[n]) for n in kernels)
  assert names["decoder/logits_dense/kernel"].values.shape == (VOCAB, 32)
  np.testing.assert_array_equal(names["token_embedder/embedding"],
                                params["token_embedder"]["embedding"])
  np.testing.assert_array_equal(names["decoder/decoder_norm/scale"],
                                params["decoder"]["decoder_norm"]["scale"])
  # Packing a packed tree changes nothing (kernels are already PackedKernel).
  again = pack_params(packed, "int8")
  assert jax.tree.structure(again) == jax.tree.structure(packed)
  jax.tree.map(np.testing.assert_array_equal, again, packed)


@pytest.mark.parametrize("weights,tolerance", [("float32", 1e-5), ("bfloat16", 0.03),
                                               ("int8", 0.05)])
def test_packed_steps_match_the_plain_model(t5, weights, tolerance):
  model, params, enc = t5
  plain, packed = prefix_logits(model, params, weights, enc)
  assert packed.dtype == jnp.float32 and packed.shape == plain.shape
  diff = float(jnp.max(jnp.abs(packed - plain)))
  assert diff < tolerance * float(jnp.max(jnp.abs(plain))), diff
  if weights == "float32":  # same numbers: greedy decoding is unchanged
    a = greedy_decode(model, params, enc, max_decode_length=MAX_LEN, eos_id=-1)
    b = greedy_decode(model, params, enc, max_decode_length=MAX_LEN, eos_id=-1,
                      step_params=pack_params(params, "float32"))
    np.testing.assert_array_equal(a, b)


MAKE_T5_1_0 = lambda: Transformer(t5_1_0_config("small", **SMALL))  # tied, scaled logits
MAKE_PROST = lambda: ProstTransformer(prost_config("tiny", max_positions=16, **SMALL))  # biases


@pytest.mark.parametrize("make", [
    MAKE_T5_1_0,
    lambda: Transformer(t5_1_1_config("tiny", scan_layers=True, **SMALL)),    # stacked kernels
    MAKE_PROST,
], ids=["t5_1_0", "t5_1_1_scan", "prost"])
def test_packed_float32_is_exact_for_every_family(make, t5):
  _, _, enc = t5
  model = make()
  params = init_params(model)
  plain, packed = prefix_logits(model, params, "float32", enc)
  np.testing.assert_allclose(packed, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make,name", [(MAKE_T5_1_0, "token_embedder"), (MAKE_PROST, "shared")],
                         ids=["t5_1_0", "prost"])
def test_tied_output_layer_is_packed_and_used(make, name, t5):
  _, _, enc = t5
  model = make()
  assert model.tied_output_embedding == name
  params = init_params(model)
  packed = pack_params(params, "int8", tied_output_embedding=name)
  attend = packed[name]["attend_kernel"]
  assert attend.values.dtype == jnp.int8 and attend.values.shape == (VOCAB, 32)
  np.testing.assert_array_equal(packed[name]["embedding"], params[name]["embedding"])
  plain, quantized = prefix_logits(model, params, packed, enc)
  diff = float(jnp.max(jnp.abs(quantized - plain)))
  assert 0 < diff < 0.05 * float(jnp.max(jnp.abs(plain))), diff
  # The decoder reads the packed copy, not the table: zeroing it zeroes the logits.
  zeroed = dict(packed)
  zeroed[name] = dict(packed[name], attend_kernel=PackedKernel(
      jnp.zeros_like(attend.values), attend.scale))
  assert float(jnp.max(jnp.abs(prefix_logits(model, params, zeroed, enc)[1]))) == 0.0
  # Packing again keeps the packed copy as it is.
  again = pack_params(packed, "int8", tied_output_embedding=name)
  jax.tree.map(np.testing.assert_array_equal, again, packed)


def test_tied_output_errors_name_the_embedding(t5):
  _, _, enc = t5
  model = MAKE_T5_1_0()
  params = init_params(model)
  with pytest.raises(ValueError, match=r"tied_output_embedding='shared': params have no "
                                       r"'shared/embedding'"):
    pack_params(params, "int8", tied_output_embedding="shared")
  wrong = pack_params(params, "float32", tied_output_embedding="token_embedder")
  wrong["token_embedder"] = dict(wrong["token_embedder"],
                                 attend_kernel=pack_kernel(jnp.ones((31, VOCAB)), "float32"))
  with pytest.raises(ValueError, match=r"token_embedder: packed attend_kernel is \[64, 31\], "
                                       r"expected \[64, 32\]"):
    prefix_logits(model, params, wrong, enc)


def test_beam_search_and_sampling_take_step_params(t5):
  model, params, enc = t5
  packed = pack_params(params, "float32")
  beams = lambda **kw: beam_search(model, params, enc, beam_size=2, max_decode_length=MAX_LEN,
                                   **kw)[0]
  np.testing.assert_array_equal(beams(), beams(step_params=packed))
  samples = lambda **kw: sample_decode(model, params, enc, jax.random.key(3),
                                       max_decode_length=MAX_LEN, **kw)
  np.testing.assert_array_equal(samples(), samples(step_params=packed))


def test_mismatched_packed_kernel_is_named(t5):
  model, params, enc = t5
  packed = pack_params(params, "float32")
  wrong = jax.tree.map(lambda x: x, packed)
  wrong["decoder"]["logits_dense"]["kernel"] = pack_kernel(jnp.ones((32, VOCAB + 1)), "float32")
  with pytest.raises(ValueError, match=r"logits_dense: packed kernel is \[65, 32\], "
                                       r"expected \[64, 32\]"):
    prefix_logits(model, params, wrong, enc)


def test_int8_step_weights_run_a_bf16_models_steps_in_float32(t5):
  model, params, enc = t5
  bf16 = Transformer(t5_1_1_config("tiny", **SMALL, dtype="bfloat16", matmul="bf16_fast"))
  int8 = pack_params(params, "int8")
  assert step_module_for(bf16, None, int8).config.dtype == "float32"
  assert step_module_for(bf16, "bfloat16", int8) is bf16  # asked for: kept
  assert step_module_for(bf16, None, pack_params(params, "bfloat16")) is bf16
  assert step_module_for(model, None, int8) is model
  run = functools.partial(greedy_decode, bf16, params, enc, max_decode_length=MAX_LEN,
                          eos_id=-1, step_params=int8)
  np.testing.assert_array_equal(run(), run(step_dtype="float32"))
