"""attention_kernel='cudnn': cuDNN's flash attention behind `jax.nn.dot_product_attention`.

cuDNN itself needs an NVIDIA GPU (`bench/gpu_check.py` measures it there). On a CPU these
tests put `jax.nn.dot_product_attention`'s own XLA reference behind the same call and check
our side of it: layouts, masks, the position bias and its gradient, the unscaled logits,
dtypes, the decoding paths, and the errors.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.inference.decoding import greedy_decode, step_module_for
from prosocial_jax.inference.packed_weights import pack_params
from prosocial_jax.models import attention, prost_config
from prosocial_jax.models.errors import ConfigError
from prosocial_jax.models.registry import build_module

from .test_options import batch, init, loss_and_grads, micro_t5

VOCAB = 64


@pytest.fixture
def reference_kernel(monkeypatch):
  monkeypatch.setattr(attention, "FUSED_IMPLEMENTATION", "xla")


def relative_error(a, b) -> float:
  a, b = (jnp.concatenate([x.astype(jnp.float32).ravel() for x in jax.tree.leaves(t)])
          for t in (a, b))
  return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def test_fused_attention_takes_masks_and_bias_as_ours_does(reference_kernel):
  b, q, k, h, d = 2, 6, 8, 3, 16
  keys = jax.random.split(jax.random.key(0), 4)
  query, key, value = (jax.random.normal(r, s, jnp.float32).astype(jnp.bfloat16)
                       for r, s in zip(keys, [(b, q, h, d), (b, k, h, d), (b, k, h, d)]))
  position_bias = jax.random.normal(keys[3], (1, h, q, k), jnp.float32)
  # Padding in the second example's keys, and two packed segments in the first.
  segments = jnp.array([[1, 1, 1, 2, 2, 2, 2, 2], [1, 1, 1, 1, 1, 0, 0, 0]])
  mask = attention.combine_masks(attention.make_segment_mask(segments[:, :q], segments),
                                 attention.make_padding_mask(segments[:, :q], segments))

  def ours(query, key, value, position_bias):
    bias = jnp.where(mask, 0.0, -1e10) + position_bias
    return attention.dot_product_attention(query, key, value, bias, dropout_rng=None,
                                           dropout_rate=0.0, deterministic=True,
                                           dtype=jnp.bfloat16)

  def fused(query, key, value, position_bias):
    return attention.fused_attention(query, key, value, mask, position_bias,
                                     dtype=jnp.bfloat16)

  # A padding query (the second example's last) attends to nothing: its output is
  # meaningless on both kernels (XLA's reference zeroes it) and never reaches the loss.
  real = (segments[:, :q] > 0)[:, :, None, None]
  as_f32 = lambda x: jnp.where(real, x.astype(jnp.float32), 0.0)
  np.testing.assert_allclose(as_f32(fused(query, key, value, position_bias)),
                             as_f32(ours(query, key, value, position_bias)), atol=3e-2, rtol=2e-2)
  # Masked keys get no weight: changing their values changes nothing.
  masked_out = segments == 0
  masked_out = masked_out.at[0, 3:].set(True)  # for the first example's first segment
  changed = jnp.where(masked_out[:, :, None, None], 100.0, value.astype(jnp.float32))
  np.testing.assert_array_equal(
      fused(query, key, changed.astype(jnp.bfloat16), position_bias)[0, :3],
      fused(query, key, value, position_bias)[0, :3])
  np.testing.assert_array_equal(
      fused(query, key, changed.astype(jnp.bfloat16), position_bias)[1, :5],
      fused(query, key, value, position_bias)[1, :5])
  # Gradients, the position bias's summed over the batch included.
  loss = lambda f: lambda *a: jnp.sum(as_f32(f(*a)) ** 2)
  ours_grads = jax.grad(loss(ours), argnums=(0, 1, 2, 3))(query, key, value, position_bias)
  fused_grads = jax.grad(loss(fused), argnums=(0, 1, 2, 3))(query, key, value, position_bias)
  assert fused_grads[3].shape == (1, h, q, k) and fused_grads[3].dtype == jnp.float32
  for name, got, want in zip(("query", "key", "value", "bias"), fused_grads, ours_grads):
    assert relative_error(got, want) < 3e-2, name


def test_a_t5_on_the_fused_kernel_trains_and_decodes_as_on_xlas(reference_kernel):
  xla, fused = micro_t5(dtype="bfloat16"), micro_t5(dtype="bfloat16", attention_kernel="cudnn")
  params = init(xla)
  xla_loss, xla_grads = loss_and_grads(xla, params)
  fused_loss, fused_grads = loss_and_grads(fused, params)
  np.testing.assert_allclose(fused_loss, xla_loss, rtol=1e-2)
  # The whole bf16 model: the bias is added in bf16 here, in float32 on the XLA kernel.
  assert relative_error(fused_grads, xla_grads) < 3e-2
  bias_grad = lambda g: g["encoder"]["relpos_bias"]["rel_embedding"]
  assert relative_error(bias_grad(fused_grads), bias_grad(xla_grads)) < 3e-2
  enc = batch()[0]
  decode = lambda cfg: greedy_decode(build_module(cfg), params, enc, max_decode_length=8,
                                     eos_id=-1)
  tokens = decode(xla)
  # Along that path the two kernels' logits differ by their rounding (0.024 here) ...
  dec_in = jnp.pad(tokens[:, :-1], ((0, 0), (1, 0)))
  logits = lambda cfg: build_module(cfg).apply({"params": params}, enc, dec_in, tokens,
                                               enable_dropout=False).astype(jnp.float32)
  np.testing.assert_allclose(logits(fused), logits(xla), atol=6e-2)
  # ... which can flip a near tie (this model's closest top two: 0.039 apart), so greedy
  # decoding through the fused kernel (its cache filled by it) is held to most tokens.
  fused_tokens = decode(fused)
  assert fused_tokens.shape == tokens.shape and np.mean(fused_tokens == tokens) >= 0.75


def test_a_prost_on_the_fused_kernel_gives_xlas_loss(reference_kernel):
  micro = functools.partial(prost_config, "tiny", vocab_size=VOCAB, dtype="bfloat16")
  xla, fused = micro(), micro(attention_kernel="cudnn")
  params = init(xla)
  xla_loss, xla_grads = loss_and_grads(xla, params)
  fused_loss, fused_grads = loss_and_grads(fused, params)
  np.testing.assert_allclose(fused_loss, xla_loss, rtol=1e-2)
  assert relative_error(fused_grads, xla_grads) < 3e-2


def test_the_cudnn_kernel_off_a_gpu_is_refused_by_name():
  config = micro_t5(dtype="bfloat16", attention_kernel="cudnn")
  with pytest.raises(ConfigError, match="attention_kernel='cudnn' runs on NVIDIA GPUs; this "
                                        "job's backend is 'cpu'"):
    init(config)


@pytest.mark.parametrize("make, message", [
    (lambda: micro_t5(attention_kernel="cudnn"), "needs dtype='bfloat16'"),
    (lambda: micro_t5(dtype="bfloat16", attention_kernel="cudnn", dropout_rate=0.1),
     r"cannot drop attention weights: set T5Config.dropout_rate=0"),
    (lambda: prost_config("tiny", vocab_size=VOCAB, dtype="bfloat16", attention_kernel="cudnn",
                          attention_dropout_rate=0.1),
     r"set ProstConfig.attention_dropout_rate=0"),
    (lambda: micro_t5(attention_kernel="flash"), r"must be one of \('xla', 'cudnn'\)"),
])
def test_configs_the_kernel_cannot_run_are_refused(make, message):
  with pytest.raises(ConfigError, match=message):
    make()


def test_prost_keeps_residual_dropout_with_the_fused_kernel():
  config = prost_config("tiny", vocab_size=VOCAB, dtype="bfloat16", attention_kernel="cudnn",
                        dropout_rate=0.1)
  assert config.dropout_rate == 0.1 and config.attention_dropout_rate == 0.0


def test_a_config_trained_on_cudnn_runs_elsewhere_on_xla():
  config = micro_t5(dtype="bfloat16", attention_kernel="cudnn")
  assert config.runnable_on("gpu") is config
  for backend in ("cpu", "tpu"):
    assert config.runnable_on(backend) == micro_t5(dtype="bfloat16")
  plain = micro_t5()
  assert plain.runnable_on("cpu") is plain
  init(config.runnable_on("cpu"))  # the refusal above does not apply


def test_decoder_steps_in_another_dtype_leave_the_fused_kernel(reference_kernel):
  # int8 step weights run a bf16 model's steps in float32, which cuDNN does not take.
  config = micro_t5(dtype="bfloat16", attention_kernel="cudnn")
  params = init(config)
  module = build_module(config)
  int8 = pack_params(params, "int8")
  steps = step_module_for(module, None, int8)
  assert (steps.config.dtype, steps.config.attention_kernel) == ("float32", "xla")
  decode = lambda module: greedy_decode(module, params, batch()[0], max_decode_length=8,
                                        eos_id=-1, step_params=int8)
  # The encoders differ by the kernels' rounding (see above): most tokens, not every one.
  tokens, xla_tokens = decode(module), decode(build_module(micro_t5(dtype="bfloat16")))
  assert tokens.shape == xla_tokens.shape and np.mean(tokens == xla_tokens) >= 0.75


def lengths_as_mask(mask: attention.LengthsMask, q: int, k: int):
  """The boolean [batch, 1, q, k] mask a `LengthsMask`'s lengths describe."""
  rows = jnp.arange(q)[None, :, None] < mask.query_lengths[:, None, None]
  cols = jnp.arange(k)[None, None, :] < mask.key_lengths[:, None, None]
  dense = rows & cols
  if mask.causal:
    dense = dense & (jnp.arange(k)[None, :] <= jnp.arange(q)[:, None])
  return dense[:, None]


def test_an_unpacked_batchs_masks_are_its_lengths():
  enc = jnp.array([[5, 6, 7, 8, 0, 0], [5, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
  tgt = jnp.array([[3, 4, 5, 0], [3, 4, 5, 6], [0, 0, 0, 0]])
  encoder = attention.make_encoder_mask(enc)
  self_mask, cross = attention.make_decoder_masks(enc, tgt, tgt, decode=False)
  assert (self_mask.causal, cross.causal, encoder.causal) == (True, False, False)
  np.testing.assert_array_equal(encoder.query_lengths, [4, 1, 0])
  np.testing.assert_array_equal(self_mask.query_lengths, [3, 4, 0])
  for mask, (q, k) in [(encoder, (6, 6)), (self_mask, (4, 4)), (cross, (4, 6))]:
    np.testing.assert_array_equal(lengths_as_mask(mask, q, k), mask.dense)
  # Packed batches keep a dense mask: segments are not lengths.
  segments = jnp.array([[1, 1, 2, 2, 0, 0]] * 3)
  assert isinstance(attention.make_encoder_mask(enc, segments), jax.Array)
  packed = attention.make_decoder_masks(enc, tgt, tgt, segments, segments[:, :4], decode=False)
  assert all(isinstance(m, jax.Array) for m in packed)


@pytest.fixture
def fused_calls(reference_kernel, monkeypatch):
  """What reaches `jax.nn.dot_product_attention`, one entry per traced call."""
  calls, original = [], jax.nn.dot_product_attention

  def spy(query, key, value, bias=None, mask=None, **kwargs):
    calls.append(dict(bias=None if bias is None else bias.shape, mask=mask is not None,
                      lengths="query_seq_lengths" in kwargs,
                      causal=kwargs.get("is_causal", False)))
    return original(query, key, value, bias=bias, mask=mask, **kwargs)
  monkeypatch.setattr(jax.nn, "dot_product_attention", spy)
  return calls


def test_cudnn_gets_unpacked_padding_as_lengths_and_the_bias_unbroadcast(fused_calls):
  config = micro_t5(dtype="bfloat16", attention_kernel="cudnn", scan_layers=False)
  params = init(config)
  fused_calls.clear()
  enc, dec_in, tgt = batch()
  build_module(config).apply({"params": params}, enc, dec_in, tgt, enable_dropout=False)
  heads, length = config.num_heads, enc.shape[1]
  self_bias = (1, heads, length, length)
  # One encoder layer, then two decoder layers (self, then cross attention).
  assert fused_calls == [
      dict(bias=self_bias, mask=False, lengths=True, causal=False),
      dict(bias=self_bias, mask=False, lengths=True, causal=True),
      dict(bias=None, mask=False, lengths=True, causal=False),
      dict(bias=self_bias, mask=False, lengths=True, causal=True),
      dict(bias=None, mask=False, lengths=True, causal=False)]
  fused_calls.clear()
  segments = jnp.ones_like(enc).at[:, length // 2:].set(2)
  build_module(config).apply({"params": params}, enc, dec_in, tgt, segments, segments,
                             enable_dropout=False)
  assert len(fused_calls) == 5
  assert all(call["mask"] and not call["lengths"] for call in fused_calls)


def test_padded_targets_and_an_empty_example_train_as_on_xla(reference_kernel):
  xla, fused = micro_t5(dtype="bfloat16"), micro_t5(dtype="bfloat16", attention_kernel="cudnn")
  params = init(xla)
  enc, _, tgt = batch()
  # A third example of padding only, as a filler row of an eval batch; padded targets.
  enc = jnp.concatenate([enc, jnp.zeros_like(enc[:1])])
  tgt = jnp.concatenate([tgt, jnp.zeros_like(tgt[:1])]) * (jnp.arange(tgt.shape[1]) < 6)
  dec_in = jnp.pad(tgt[:, :-1], ((0, 0), (1, 0)))
  weights = (tgt > 0).astype(jnp.float32)

  def loss_and_grads(config):
    def loss_fn(p):
      logits = build_module(config).apply({"params": p}, enc, dec_in, tgt,
                                          enable_dropout=False)
      token_loss = -jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1)[..., 0]
      return jnp.sum(token_loss * weights) / jnp.sum(weights)
    return jax.jit(jax.value_and_grad(loss_fn))(params)
  xla_loss, xla_grads = loss_and_grads(xla)
  fused_loss, fused_grads = loss_and_grads(fused)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(fused_grads))
  np.testing.assert_allclose(fused_loss, xla_loss, rtol=1e-2)
  assert relative_error(fused_grads, xla_grads) < 3e-2


@pytest.mark.parametrize("layers", [dict(scan_layers=True, remat_policy="full"),
                                    dict(scan_layers=False, remat_policy="dots")])
def test_scanned_and_rematerialised_layers_take_the_lengths_too(reference_kernel, layers):
  xla = micro_t5(dtype="bfloat16", **layers)
  fused = micro_t5(dtype="bfloat16", attention_kernel="cudnn", **layers)
  params = init(xla)
  np.testing.assert_allclose(loss_and_grads(fused, params)[0], loss_and_grads(xla, params)[0],
                             rtol=1e-2)
