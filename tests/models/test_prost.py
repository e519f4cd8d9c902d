"""Prost (BlenderBot-style): equal to HF Blenderbot; names, positions, packing, decoding."""

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial_jax.models import registry
from prosocial_jax.inference.decoding import decode_step, greedy_decode, init_decode_cache
from prosocial_jax.models.prost import ProstConfig, Transformer, hf_names, prost_config
from prosocial_jax.inference.scoring import shift_right

VOCAB = 64
LEN = 8
FIXTURE = os.path.join(os.path.dirname(__file__), "testdata", "blenderbot_tiny.npz")


def micro_prost(**overrides):
  """1 encoder / 3 decoder layers: asymmetric like 2_7b, compiles in about a second."""
  fields = dict(vocab_size=VOCAB, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
                num_encoder_layers=1, num_decoder_layers=3, max_positions=16)
  return prost_config("tiny", **{**fields, **overrides})


def flat(tree):
  leaves = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
  return {"/".join(k.key for k in path): leaf for path, leaf in leaves}


@pytest.fixture(scope="module")
def micro():
  model = Transformer(micro_prost())
  tokens = jnp.ones((2, LEN), jnp.int32)
  variables = jax.jit(functools.partial(model.init, enable_dropout=False))(
      jax.random.key(0), tokens, tokens, tokens)
  forward = jax.jit(lambda p, *args: model.apply({"params": p}, *args, enable_dropout=False))
  return model, nn.unbox(variables["params"]), variables["params"], forward


def rand(seed, shape, low=2):
  return jax.random.randint(jax.random.key(seed), shape, low, VOCAB, dtype=jnp.int32)


def pad_to(x, length):
  return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def test_logits_equal_hugging_face_blenderbot():
  """The committed fixture: a random tiny HF Blenderbot (bench/prost_hf_reference.py)."""
  data = np.load(FIXTURE)
  hf = json.loads(str(data["config"]))
  config = ProstConfig(
      vocab_size=hf["vocab_size"], emb_dim=hf["d_model"], num_heads=hf["encoder_attention_heads"],
      head_dim=hf["d_model"] // hf["encoder_attention_heads"], mlp_dim=hf["encoder_ffn_dim"],
      num_encoder_layers=hf["encoder_layers"], num_decoder_layers=hf["decoder_layers"],
      max_positions=hf["max_position_embeddings"])
  model = Transformer(config)
  enc, dec = jnp.asarray(data["enc"]), jnp.asarray(data["dec"])
  shapes = nn.unbox(jax.eval_shape(functools.partial(model.init, enable_dropout=False),
                                   jax.random.key(0), enc, dec, dec)["params"])
  state = {k[len("param:"):]: data[k] for k in data.files if k.startswith("param:")}
  used = set()

  def load(path, leaf):
    name = "/".join(k.key for k in path)
    key = hf_names.hf_key(name)
    used.add(key)
    value = state[key].T if hf_names.is_transposed(name) else state[key]
    assert value.shape == leaf.shape, name  # same shapes as HF, up to the transpose
    return jnp.asarray(value)

  params = jax.tree_util.tree_map_with_path(load, shapes)
  assert set(state) - used == set(hf_names.ZERO_BUFFERS)  # every HF tensor has a home
  logits = jax.jit(functools.partial(model.apply, enable_dropout=False))(
      {"params": params}, enc, dec, jnp.ones_like(dec))
  np.testing.assert_allclose(logits, data["logits"], atol=1e-4, rtol=1e-4)


def test_hf_key_rule():
  assert (hf_names.hf_key("decoder/layers_11/encoder_attn/q_proj/kernel")
          == "model.decoder.layers.11.encoder_attn.q_proj.weight")
  assert hf_names.hf_key("shared/embedding") == "model.shared.weight"
  assert hf_names.hf_key("encoder/layer_norm/scale") == "model.encoder.layer_norm.weight"
  with pytest.raises(ValueError, match="Not a Prost parameter"):
    hf_names.hf_key("encoder/layer_norm")


def test_names_axes_and_asymmetric_depths(micro):
  _, _, boxed, _ = micro
  params = flat(boxed)
  layers_of = lambda stack: {k.split("/")[1] for k in params if k.startswith(stack + "/layers_")}
  assert layers_of("encoder") == {"layers_0"}
  assert layers_of("decoder") == {"layers_0", "layers_1", "layers_2"}
  assert "decoder/layers_2/encoder_attn/k_proj/bias" in params
  assert "shared/embedding" in params and not any("lm_head" in k for k in params)  # tied
  for name, leaf in params.items():
    assert len(leaf.names) == leaf.value.ndim, name
    assert leaf.value.dtype == jnp.float32, name
  assert params["encoder/embed_positions/embedding"].names == ("abspos_buckets", "embed")


def test_2_7b_parameter_count():
  cfg = prost_config("2_7b")
  tokens = jnp.ones((1, 2), jnp.int32)
  shapes = jax.eval_shape(functools.partial(Transformer(cfg).init, enable_dropout=False),
                          jax.random.key(0), tokens, tokens, tokens)
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  # facebook/blenderbot-3B's parameters (its zero final_logits_bias buffer aside).
  assert count == 2_696_268_800


def test_packed_segments_use_their_own_positions(micro):
  _, params, _, forward = micro
  enc_a, enc_b = rand(1, (4,)), rand(2, (3,))
  tgt_a, tgt_b = rand(3, (3,)), rand(4, (4,))
  enc = pad_to(jnp.concatenate([enc_a, enc_b]), LEN)[None]
  tgt = pad_to(jnp.concatenate([tgt_a, tgt_b]), LEN)[None]
  dec_in = pad_to(jnp.concatenate([shift_right(tgt_a), shift_right(tgt_b)]), LEN)[None]
  seg = lambda n1, n2: pad_to(jnp.array([1] * n1 + [2] * n2), LEN)[None]
  pos = lambda n1, n2: pad_to(jnp.concatenate([jnp.arange(n1), jnp.arange(n2)]), LEN)[None]
  packed = forward(params, enc, dec_in, tgt, seg(4, 3), seg(3, 4), pos(4, 3), pos(3, 4))
  alone = forward(params, jnp.stack([pad_to(enc_a, LEN), pad_to(enc_b, LEN)]),
                  jnp.stack([pad_to(shift_right(tgt_a), LEN), pad_to(shift_right(tgt_b), LEN)]),
                  jnp.stack([pad_to(tgt_a, LEN), pad_to(tgt_b, LEN)]))
  np.testing.assert_allclose(packed[0, :3], alone[0, :3], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(packed[0, 3:7], alone[1, :4], atol=1e-5, rtol=1e-5)


def test_too_long_for_learned_positions(micro):
  model, params, _, _ = micro
  long = jnp.ones((1, 17), jnp.int32)
  with pytest.raises(ValueError, match="16 learned positions"):
    model.apply({"params": params}, long, long[:, :4], long[:, :4], enable_dropout=False)
  with pytest.raises(ValueError, match="exceeds Prost's 16 learned positions"):
    greedy_decode(model, params, long[:, :4], max_decode_length=17)


def test_cached_decoding_equals_full_forward(micro):
  model, params, _, forward = micro
  enc = rand(5, (2, 6)) * (jnp.arange(6) < jnp.array([[6], [3]]))
  tgt = rand(6, (2, LEN))
  full = forward(params, enc, shift_right(tgt), tgt)
  encoded, cache = jax.jit(functools.partial(init_decode_cache, model, max_decode_length=LEN))(
      params, enc)
  step = jax.jit(functools.partial(decode_step, model, max_decode_length=LEN))
  dec_in = shift_right(tgt)
  logits, cache = step(params, cache, encoded, enc, dec_in[:, :2])
  pieces = [logits]
  for i in range(2, LEN):
    logits, cache = step(params, cache, encoded, enc, dec_in[:, i:i + 1])
    pieces.append(logits)
  np.testing.assert_allclose(jnp.concatenate(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_scanned_layers_give_the_same_logits(micro):
  _, params, _, forward = micro
  model = Transformer(micro_prost(scan_layers=True, remat_policy="full"))
  def stack(sub):  # layers_{i} subtrees -> one `layers` subtree, layer axis 1 (as T5X)
    numbered = sorted((k for k in sub if k.startswith("layers_")), key=lambda k: int(k[7:]))
    rest = {k: v for k, v in sub.items() if not k.startswith("layers_")}
    return {**rest, "layers": jax.tree.map(lambda *xs: jnp.stack(xs, axis=1),
                                           *[sub[k] for k in numbered])}
  stacked = {"shared": params["shared"], "encoder": stack(params["encoder"]),
             "decoder": stack(params["decoder"])}
  enc, tgt = rand(7, (2, LEN)), rand(8, (2, LEN))
  got = jax.jit(functools.partial(model.apply, enable_dropout=False))(
      {"params": stacked}, enc, shift_right(tgt), tgt)
  np.testing.assert_allclose(got, forward(params, enc, shift_right(tgt), tgt),
                             atol=1e-5, rtol=1e-5)


def test_config_round_trip_and_registry():
  cfg = prost_config("2_7b", dtype="bfloat16", scan_layers=True)
  record = json.loads(json.dumps(registry.config_to_dict(cfg)))
  assert record["family"] == "prost"
  assert registry.config_from_dict(record) == cfg
  assert isinstance(registry.build_module(cfg), Transformer)
  with pytest.raises(ValueError, match="Unknown ProstConfig field 'n_layers'"):
    ProstConfig.from_dict({**cfg.to_dict(), "n_layers": 2})
  with pytest.raises(ValueError, match="vocab_size"):
    prost_config("tiny")
  with pytest.raises(ValueError, match="bf16_fast"):
    prost_config("2_7b", matmul="bf16_fast")
