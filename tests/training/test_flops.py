"""The training-step FLOP count and MFU (training/flops.py).

Three independent checks of the count: the Hugging Face peer's numbers, a case
multiplied out by hand, and the matmul kernels of the real Flax modules.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.models import prost_config, t5_1_0_config, t5_1_1_config
from prosocial_jax.training import flops

# (size, batch, inputs_length, targets_length) -> forward FLOPs, as printed by the
# peer's own code on 2026-11-30: in ../shared/bench,
#   python3 -c "import t5_common as t; print(t.forward_matmul_flops(size, b, li, lt))"
# The peer's train-step count (hf_t5_train.py, `flops_explicit`) is 3 x these.
PEER_FORWARD_FLOPS = {
    ("tiny", 8, 128, 64): 6_257_901_568,
    ("tiny", 1, 512, 128): 2_160_066_560,
    ("tiny", 4, 32, 16): 760_217_600,
    ("tiny", 3, 7, 5): 166_173_696,
    ("tiny", 2, 64, 256): 5_142_216_704,
    ("tiny", 24, 512, 128): 51_841_597_440,
    ("small", 8, 128, 64): 87_308_632_064,
    ("small", 1, 512, 128): 36_624_662_528,
    ("small", 4, 32, 16): 10_649_337_856,
    ("small", 3, 7, 5): 2_082_951_168,
    ("small", 2, 64, 256): 47_143_976_960,
    ("small", 24, 512, 128): 878_991_900_672,
}


@pytest.mark.parametrize("key", sorted(PEER_FORWARD_FLOPS))
def test_equals_the_peer_count_for_t5_1_1(key):
  size, batch, li, lt = key
  config = t5_1_1_config(size, vocab_size=32128)  # the peer's vocabulary for both sizes
  assert flops.forward_flops(config, batch, li, lt) == PEER_FORWARD_FLOPS[key]
  assert flops.train_step_flops(config, batch, li, lt) == 3 * PEER_FORWARD_FLOPS[key]


def _hand_config(**overrides):
  # emb 4, 2 heads x 3 (inner 6), mlp 5, one layer per stack, vocab 10.
  fields = dict(vocab_size=10, emb_dim=4, num_heads=2, head_dim=3, mlp_dim=5,
                num_encoder_layers=1, num_decoder_layers=1)
  return t5_1_1_config("tiny", **{**fields, **overrides})


def test_a_case_multiplied_out_by_hand():
  # One example, inputs 2, targets 3. Multiply-accumulates:
  #   encoder  q,k,v,o 4*(2*4*6)=192; QK^T 2*2*2*3=24, AV 24; wi_0,wi_1 2*(2*4*5)=80, wo 2*5*4=40
  #   decoder  self q,k,v,o 4*(3*4*6)=288; self QK^T 2*3*3*3=54, AV 54;
  #            cross q,o 2*(3*4*6)=144, cross k,v 2*(2*4*6)=96; cross QK^T 2*3*2*3=36, AV 36;
  #            wi_0,wi_1 2*(3*4*5)=120, wo 3*5*4=60
  #   logits   3*4*10=120
  expected_macs = dict(attention_projections=192 + 288 + 144 + 96,
                       attention_scores=48 + 108 + 72,
                       mlp=120 + 180,
                       logits=120)
  parts = flops.forward_flops_by_part(_hand_config(), 1, 2, 3)
  assert parts == {k: 2 * v for k, v in expected_macs.items()}
  assert flops.forward_flops(_hand_config(), 1, 2, 3) == 2 * 1368
  assert flops.train_step_flops(_hand_config(), 1, 2, 3) == 3 * 2 * 1368
  # Everything is per example: twice the batch, twice the FLOPs.
  assert flops.forward_flops(_hand_config(), 2, 2, 3) == 2 * 2 * 1368


def test_gated_mlp_has_one_more_input_matrix():
  gated = flops.forward_flops_by_part(_hand_config(), 1, 2, 3)
  relu = flops.forward_flops_by_part(_hand_config(mlp_activations=("relu",)), 1, 2, 3)
  # The extra wi_1 [4, 5], applied at 2 encoder and 3 decoder positions.
  assert gated["mlp"] - relu["mlp"] == 2 * (2 + 3) * 4 * 5
  assert {k: v for k, v in gated.items() if k != "mlp"} == \
      {k: v for k, v in relu.items() if k != "mlp"}


def test_prost_counts_like_a_non_gated_t5_of_the_same_shapes():
  shapes = dict(vocab_size=8008, emb_dim=2560, num_heads=32, head_dim=80, mlp_dim=10240,
                num_encoder_layers=2, num_decoder_layers=24)
  prost = prost_config("2_7b")
  t5_like = t5_1_0_config("small", **shapes)  # ReLU: one input matrix, tied output
  assert flops.forward_flops_by_part(prost, 32, 128, 128) == \
      flops.forward_flops_by_part(t5_like, 32, 128, 128)


def _linear_macs_of_the_modules(model, li, lt):
  """Sum over every matmul kernel of the real module of (weights x the length it is
  applied to): the encoder's and the cross-attention's keys/values see the inputs,
  everything else in the decoder (and a tied output table) the targets."""
  batch = {"encoder_input_tokens": jax.ShapeDtypeStruct((1, li), jnp.int32),
           "decoder_input_tokens": jax.ShapeDtypeStruct((1, lt), jnp.int32),
           "decoder_target_tokens": jax.ShapeDtypeStruct((1, lt), jnp.int32)}
  params = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), batch))
  total = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [p.key for p in path]
    if names[0] == model.tied_output_embedding:
      total += leaf.size * lt
    elif names[-1] == "kernel":
      cross_kv = names[-2] in ("key", "value", "k_proj", "v_proj") and \
          names[-3] in ("encoder_decoder_attention", "encoder_attn")
      total += leaf.size * (li if names[0] == "encoder" or cross_kv else lt)
  return total


@pytest.mark.parametrize("config", [
    t5_1_1_config("tiny", vocab_size=50),
    t5_1_0_config("small", vocab_size=50, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=24,
                  num_encoder_layers=2, num_decoder_layers=1),
    prost_config("tiny", vocab_size=50, max_positions=16),
], ids=["t5_1_1", "t5_1_0", "prost"])
def test_projections_mlp_and_logits_match_the_modules_kernels(config):
  li, lt = 12, 7
  parts = flops.forward_flops_by_part(config, 1, li, lt)
  linear = parts["attention_projections"] + parts["mlp"] + parts["logits"]
  assert linear == 2 * _linear_macs_of_the_modules(EncoderDecoderModel(config), li, lt)


def test_bad_arguments():
  with pytest.raises(ValueError, match="targets_length"):
    flops.forward_flops(_hand_config(), 1, 2, 0)
  with pytest.raises(TypeError, match="No FLOP count for dict"):
    flops.forward_flops({}, 1, 2, 3)


@pytest.mark.parametrize("kind,dtype,peak_tflops", [
    ("TPU v4", "bfloat16", 275),
    ("TPU v5 lite", "bfloat16", 197),
    ("TPU v5e", "bfloat16", 197),
    ("TPU v5", "bfloat16", 459),
    ("TPU v5p", "bfloat16", 459),
    ("TPU v6 lite", "bfloat16", 918),
    ("TPU v6e", "float32", 918),  # default precision: one bf16 pass on TPU
    ("NVIDIA A100-SXM4-80GB", "bfloat16", 312),
    ("NVIDIA A100-SXM4-40GB", "float32", 156),  # TF32
    ("NVIDIA A100 80GB PCIe", "bfloat16", 312),
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4),
    ("NVIDIA H100 80GB HBM3", "float32", 494.7),
    ("NVIDIA H100 PCIe", "bfloat16", 756.5),
    ("NVIDIA H200", "bfloat16", 989.4),
    ("nvidia h200 ", "bfloat16", 989.4),
])
def test_peak_table(kind, dtype, peak_tflops):
  assert flops.peak_flops_per_device(kind, dtype) == pytest.approx(peak_tflops * 1e12)


@pytest.mark.parametrize("kind", ["cpu", "AMD EPYC", "TPU v4 lite", "NVIDIA H100 NVL",
                                  "NVIDIA H200 NVL", "NVIDIA GeForce RTX 4090", ""])
def test_unknown_hardware_has_no_peak(kind):
  assert flops.peak_flops_per_device(kind) is None
  assert flops.mfu(1e12, 1.0, 1, flops.peak_flops_per_device(kind)) is None


def test_peak_needs_a_known_dtype():
  with pytest.raises(ValueError, match="dtype must be one of"):
    flops.peak_flops_per_device("TPU v4", "float16")


def test_mfu_arithmetic():
  # 8 chips of 100 TFLOP/s, 2 steps/s of 200 TFLOP each: 400 of 800 TFLOP/s.
  assert flops.mfu(200e12, 2.0, 8, 100e12) == pytest.approx(0.5)
  # One v5e chip, 197 TFLOP/s peak, a 98.5 TFLOP step every 2 s: 25%.
  assert flops.mfu(98.5e12, 0.5, 1, flops.peak_flops_per_device("TPU v5 lite")) == \
      pytest.approx(0.25)
  with pytest.raises(ValueError, match="positive"):
    flops.mfu(1e12, 1.0, 0, 1e12)
