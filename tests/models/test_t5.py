"""T5 network: shapes, T5X parameter names, logical axes, masking, packing, bf16."""

import functools
import json

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models import layers
from prosocial_jax.inference.scoring import shift_right
from prosocial_jax.models.t5 import T5Config, Transformer, t5_1_0_config, t5_1_1_config
from prosocial_jax.models.errors import ConfigError
from prosocial_jax.user_errors import UserError

VOCAB = 64


def micro_t5(**overrides):
  """Smaller than the `tiny` size: every test here compiles in about a second."""
  fields = dict(vocab_size=VOCAB, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64)
  return t5_1_1_config("tiny", **{**fields, **overrides})

LOGICAL_PARAM_AXES = {"vocab", "embed", "joined_kv", "mlp", "heads", "relpos_buckets"}


def t5x_param_shapes(cfg: T5Config) -> dict[str, tuple[int, ...]]:
  """The T5X parameter table, written out independently of the network code."""
  e, hd, m = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.mlp_dim
  buckets = cfg.relative_attention_num_buckets
  attn = {f"{n}/kernel": (e, hd) for n in ("query", "key", "value")}
  attn["out/kernel"] = (hd, e)
  if len(cfg.mlp_activations) == 1:  # v1.0: one input projection, `wi`
    mlp = {"wi/kernel": (e, m), "wo/kernel": (m, e)}
  else:
    mlp = {"wi_0/kernel": (e, m), "wi_1/kernel": (e, m), "wo/kernel": (m, e)}
  shapes = {
      "token_embedder/embedding": (cfg.vocab_size, e),
      "encoder/relpos_bias/rel_embedding": (cfg.num_heads, buckets),
      "encoder/encoder_norm/scale": (e,),
      "decoder/relpos_bias/rel_embedding": (cfg.num_heads, buckets),
      "decoder/decoder_norm/scale": (e,),
  }
  if not cfg.logits_via_embedding:
    shapes["decoder/logits_dense/kernel"] = (e, cfg.vocab_size)
  for i in range(cfg.num_encoder_layers):
    p = f"encoder/layers_{i}/"
    shapes[p + "pre_attention_layer_norm/scale"] = (e,)
    shapes[p + "pre_mlp_layer_norm/scale"] = (e,)
    shapes.update({p + "attention/" + k: v for k, v in attn.items()})
    shapes.update({p + "mlp/" + k: v for k, v in mlp.items()})
  for i in range(cfg.num_decoder_layers):
    p = f"decoder/layers_{i}/"
    for norm in ("pre_self_attention_layer_norm", "pre_cross_attention_layer_norm",
                 "pre_mlp_layer_norm"):
      shapes[p + norm + "/scale"] = (e,)
    for block in ("self_attention", "encoder_decoder_attention"):
      shapes.update({p + block + "/" + k: v for k, v in attn.items()})
    shapes.update({p + "mlp/" + k: v for k, v in mlp.items()})
  return shapes


def flat_params(params) -> dict[str, object]:
  """'a/b/c' -> leaf, keeping LogicallyPartitioned boxes as leaves."""
  leaves = jax.tree_util.tree_flatten_with_path(
      params, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
  return {"/".join(k.key for k in path): leaf for path, leaf in leaves}


def init_shapes(cfg):
  """Abstract init (no FLOPs): the boxed parameter tree of ShapeDtypeStructs."""
  model = Transformer(cfg)
  tokens = jnp.ones((1, 4), jnp.int32)
  return jax.eval_shape(functools.partial(model.init, enable_dropout=False),
                        jax.random.key(0), tokens, tokens, tokens)["params"]


# Most tests use [2, LEN] encoder and decoder batches so they share one compile.
LEN = 8


@pytest.fixture(scope="module")
def tiny():
  cfg = micro_t5()
  model = Transformer(cfg)
  tokens = jnp.ones((2, LEN), jnp.int32)
  variables = jax.jit(functools.partial(model.init, enable_dropout=False))(
      jax.random.key(0), tokens, tokens, tokens)
  forward = jax.jit(lambda p, *args: model.apply(p, *args, enable_dropout=False))
  return cfg, model, variables, forward


def random_tokens(seed, shape, low=2):
  return jax.random.randint(jax.random.key(seed), shape, low, VOCAB, dtype=jnp.int32)


def pad_to(x, length):
  return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def test_output_shape_and_dtype(tiny):
  _, _, variables, forward = tiny
  enc, tgt = random_tokens(1, (2, LEN)), random_tokens(2, (2, LEN))
  logits = forward(variables, enc, shift_right(tgt), tgt)
  assert logits.shape == (2, LEN, VOCAB)
  assert logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  # The output layer is N(0, 1/emb_dim)-scaled: logits are O(1), not O(sqrt(emb)).
  assert 0.1 < float(jnp.std(logits)) < 10.0


def test_param_names_and_shapes_match_t5x(tiny):
  cfg, _, variables, _ = tiny
  got = {k: tuple(v.value.shape) for k, v in flat_params(variables["params"]).items()}
  assert got == t5x_param_shapes(cfg)


def test_logits_via_embedding_has_no_output_layer():
  cfg = micro_t5(logits_via_embedding=True,
                      mlp_activations=("relu",))
  got = {k: tuple(v.value.shape) for k, v in flat_params(init_shapes(cfg)).items()}
  assert "decoder/logits_dense/kernel" not in got and "encoder/layers_0/mlp/wi/kernel" in got
  assert got == t5x_param_shapes(cfg)


def test_tied_logits_are_scaled_embedding_products():
  cfg = t5_1_0_config("small", **{k: v for k, v in micro_t5().to_dict().items()
                                  if k in ("vocab_size", "emb_dim", "num_heads", "head_dim",
                                           "mlp_dim")},
                      num_encoder_layers=1, num_decoder_layers=1)
  model = Transformer(cfg)
  enc, tgt = random_tokens(13, (1, LEN)), random_tokens(14, (1, LEN))
  variables = jax.jit(functools.partial(model.init, enable_dropout=False))(
      jax.random.key(0), enc, shift_right(tgt), tgt)
  logits, state = jax.jit(functools.partial(model.apply, enable_dropout=False,
                                            capture_intermediates=True))(
      variables, enc, shift_right(tgt), tgt)
  hidden = state["intermediates"]["decoder"]["decoder_norm"]["__call__"][0]
  embedding = variables["params"]["token_embedder"]["embedding"].value
  np.testing.assert_allclose(logits, hidden @ embedding.T / np.sqrt(cfg.emb_dim),
                             rtol=1e-5, atol=1e-5)


# Parameter counts of the published checkpoints (google/t5-v1_1-*, t5-*).
PUBLISHED_COUNTS = {
    ("v1.1", "small"): 76_961_152, ("v1.1", "base"): 247_577_856,
    ("v1.1", "large"): 783_150_080, ("v1.1", "xl"): 2_849_757_184,
    ("v1.1", "xxl"): 11_135_332_352,
    ("v1.0", "small"): 60_506_624, ("v1.0", "base"): 222_903_552,
    ("v1.0", "large"): 737_668_096, ("v1.0", "3b"): 2_851_598_336,
    ("v1.0", "11b"): 11_307_321_344,
}


@pytest.mark.parametrize("version,size", sorted(PUBLISHED_COUNTS))
def test_size_tables_match_published_checkpoints(version, size):
  cfg = (t5_1_1_config if version == "v1.1" else t5_1_0_config)(size)
  assert cfg.vocab_size == 32128
  count = sum(int(np.prod(s)) for s in t5x_param_shapes(cfg).values())
  assert count == PUBLISHED_COUNTS[version, size]


def test_tiny_size_is_the_peer_tiny_shape():
  cfg = t5_1_1_config("tiny", vocab_size=32128)
  assert (cfg.emb_dim, cfg.mlp_dim, cfg.num_heads, cfg.head_dim,
          cfg.num_encoder_layers, cfg.num_decoder_layers) == (128, 512, 4, 32, 2, 2)


def test_small_matches_t5_v1_1_small():
  cfg = t5_1_1_config("small")
  params = flat_params(init_shapes(cfg))
  assert {k: tuple(v.value.shape) for k, v in params.items()} == t5x_param_shapes(cfg)
  count = sum(int(np.prod(v.value.shape)) for v in params.values())
  # google/t5-v1_1-small has 76.96M parameters.
  assert abs(count - 76.96e6) / 76.96e6 < 1e-3, count


def test_every_param_has_logical_axis_names(tiny):
  _, _, variables, _ = tiny
  for name, leaf in flat_params(variables["params"]).items():
    assert isinstance(leaf, nn.LogicallyPartitioned), name
    assert len(leaf.names) == leaf.value.ndim, name
    assert set(leaf.names) <= LOGICAL_PARAM_AXES, (name, leaf.names)
    assert leaf.value.dtype == jnp.float32, name


def test_t5x_initialisers(tiny):
  cfg, _, variables, _ = tiny
  p = {k: np.asarray(v.value) for k, v in flat_params(variables["params"]).items()}
  fan_in_std = cfg.emb_dim ** -0.5
  attn = "encoder/layers_0/attention/"
  # 1/sqrt(head_dim) is folded into the query initialiser, not applied at run time.
  assert np.std(p[attn + "query/kernel"]) == pytest.approx(
      fan_in_std / np.sqrt(cfg.head_dim), rel=0.15)
  assert np.std(p[attn + "key/kernel"]) == pytest.approx(fan_in_std, rel=0.15)
  # Output layer N(0, 1/emb_dim), embedding N(0, 1), norms start at one.
  assert np.std(p["decoder/logits_dense/kernel"]) == pytest.approx(fan_in_std, rel=0.15)
  assert np.std(p["token_embedder/embedding"]) == pytest.approx(1.0, rel=0.15)
  assert (p["encoder/encoder_norm/scale"] == 1.0).all()


def test_dot_general_is_injected_into_every_projection():
  calls = []

  def counting_dot_general(lhs, rhs, dimension_numbers, **kwargs):
    calls.append(rhs.shape)
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, **kwargs)

  cfg = micro_t5()
  tokens = jnp.ones((1, 4), jnp.int32)
  model = Transformer(cfg, dot_general=counting_dot_general)
  jax.eval_shape(functools.partial(model.init, enable_dropout=False),
                 jax.random.key(0), tokens, tokens, tokens)
  kernels = [v for k, v in t5x_param_shapes(cfg).items() if k.endswith("/kernel")]
  assert sorted(calls) == sorted(kernels)


def test_relative_position_buckets():
  bucket = jax.jit(functools.partial(layers.relative_position_bucket, num_buckets=32,
                                     max_distance=128), static_argnames="bidirectional")
  rel = jnp.array([0, -1, 1, -7, -8, -127, -200, 200])  # key position - query position
  # Bidirectional: 16 buckets per direction, 8 exact, keys after the query offset by 16.
  np.testing.assert_array_equal(bucket(rel, bidirectional=True),
                                [0, 1, 17, 7, 8, 15, 15, 31])
  # Causal: only keys at or before the query count; 16 exact buckets.
  rel = jnp.array([0, 5, -1, -15, -16, -127, -1000])
  np.testing.assert_array_equal(bucket(rel, bidirectional=False),
                                [0, 0, 1, 15, 16, 31, 31])


def test_encoder_padding_does_not_change_logits(tiny):
  _, _, variables, forward = tiny
  enc, tgt = random_tokens(3, (2, 5)), random_tokens(4, (2, LEN))
  ref = forward(variables, enc, shift_right(tgt), tgt)
  padded = forward(variables, pad_to(enc, LEN), shift_right(tgt), tgt)
  np.testing.assert_allclose(padded, ref, atol=1e-5, rtol=1e-5)


def test_packed_segments_equal_separate_examples(tiny):
  _, _, variables, forward = tiny
  enc_a, enc_b = random_tokens(5, (4,)), random_tokens(6, (3,))
  tgt_a, tgt_b = random_tokens(7, (3,)), random_tokens(8, (4,))
  cat = lambda *xs: pad_to(jnp.concatenate(xs), LEN)
  seg = lambda n1, n2: pad_to(jnp.array([1] * n1 + [2] * n2), LEN)
  # Row 0 packs a then b, row 1 packs b then a; each segment's decoder input starts at 0.
  enc = jnp.stack([cat(enc_a, enc_b), cat(enc_b, enc_a)])
  enc_seg = jnp.stack([seg(4, 3), seg(3, 4)])
  tgt = jnp.stack([cat(tgt_a, tgt_b), cat(tgt_b, tgt_a)])
  dec_in = jnp.stack([cat(shift_right(tgt_a), shift_right(tgt_b)),
                      cat(shift_right(tgt_b), shift_right(tgt_a))])
  dec_seg = jnp.stack([seg(3, 4), seg(4, 3)])
  packed = forward(variables, enc, dec_in, tgt, enc_seg, dec_seg)
  # Separately: one example per row, padded (padding is tested above).
  alone = forward(variables, jnp.stack([pad_to(enc_a, LEN), pad_to(enc_b, LEN)]),
                  jnp.stack([pad_to(shift_right(tgt_a), LEN), pad_to(shift_right(tgt_b), LEN)]),
                  jnp.stack([pad_to(tgt_a, LEN), pad_to(tgt_b, LEN)]))
  check = functools.partial(np.testing.assert_allclose, atol=1e-5, rtol=1e-5)
  check(packed[0, :3], alone[0, :3])
  check(packed[0, 3:7], alone[1, :4])
  check(packed[1, :4], alone[1, :4])
  check(packed[1, 4:7], alone[0, :3])


def test_bf16_runs_logits_fp32_and_grads_finite(tiny):
  cfg, _, variables, forward = tiny
  model = Transformer(T5Config.from_dict({**cfg.to_dict(), "dtype": "bfloat16"}))
  enc, tgt = random_tokens(9, (2, LEN)), random_tokens(10, (2, LEN))

  def loss_fn(params):
    logits = model.apply({"params": params}, enc, shift_right(tgt), tgt, enable_dropout=False)
    loss = -jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1).mean()
    return loss, logits

  params = nn.unbox(variables["params"])
  (loss, logits), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  assert logits.dtype == jnp.float32
  ref = forward(variables, enc, shift_right(tgt), tgt)
  # bf16 activations: close to fp32, not equal.
  assert float(jnp.max(jnp.abs(logits - ref))) < 0.1 * float(jnp.max(jnp.abs(ref)))
  assert np.isfinite(float(loss))
  for g in jax.tree.leaves(grads):
    assert g.dtype == jnp.float32 and np.isfinite(np.asarray(g)).all()


def test_dropout_uses_dropout_rng(tiny):
  _, _, variables, _ = tiny
  # 1+1 layers (tiny's params minus layers_1): every dropout site costs compile time.
  model = Transformer(micro_t5(dropout_rate=0.5,
                                    num_encoder_layers=1, num_decoder_layers=1))
  params = {k: {n: v for n, v in sub.items() if n != "layers_1"}
            for k, sub in variables["params"].items()}
  enc, tgt = random_tokens(11, (2, LEN)), random_tokens(12, (2, LEN))
  run = jax.jit(lambda rng: model.apply({"params": params}, enc, shift_right(tgt), tgt,
                                        enable_dropout=True, rngs={"dropout": rng}))
  assert not np.allclose(run(jax.random.key(0)), run(jax.random.key(1)))
  np.testing.assert_array_equal(run(jax.random.key(0)), run(jax.random.key(0)))


def test_config_dict_round_trip_and_errors():
  cfg = t5_1_1_config("small", dtype="bfloat16")
  assert T5Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
  with pytest.raises(ValueError, match="Unknown T5Config field 'num_layers'"):
    T5Config.from_dict({**cfg.to_dict(), "num_layers": 3})
  # A typo'd override names the field and its nearest spelling (not a TypeError);
  # ConfigError is a UserError: the command line prints it and exits 2.
  with pytest.raises(ConfigError, match=r"Unknown T5Config fields 'dropout' \(did you mean "
                     r"'dropout_rate'\?\), 'vocab_siz' \(did you mean 'vocab_size'\?\)"):
    t5_1_1_config("tiny", vocab_siz=8, dropout=0.1)
  assert issubclass(ConfigError, UserError)
  with pytest.raises(ValueError, match="vocab_size"):
    t5_1_1_config("tiny")
  with pytest.raises(ValueError, match="Unknown T5 v1.1 size"):
    t5_1_1_config("huge")
  with pytest.raises(ValueError, match="dtype"):
    t5_1_1_config("tiny", vocab_size=8, dtype="float16")


def test_config_is_gin_configurable():
  try:
    gin.parse_config(["T5Config.dropout_rate = 0.25", "t5_1_1_config.size = 'tiny'"])
    cfg = t5_1_1_config(vocab_size=8)
    assert cfg.dropout_rate == 0.25 and cfg.emb_dim == 128
  finally:
    gin.clear_config()
