"""The fast matmuls keep every dot of a train step on XLA:CPU's fast kernels.

XLA:CPU runs a bf16 dot on its fast path only as bf16 x bf16 -> f32 with
canonical operands; anything else it silently computes in f32 (precision.py's
module doc), and an f32 dot with a transposed operand runs on a slower kernel.
This reads the optimised HLO of the trainer's step and checks every dot, forward
and backward, attention included: its operand and result types (bf16_fast) and
that it contracts the left operand's last and the right operand's first
non-batch dimension (bf16_fast and f32_fast).
"""
import dataclasses
import functools
import re

import flax.linen as nn
import jax
import numpy as np
import pytest

from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.models import prost_config, t5_1_1_config
from prosocial_jax.training import optimizers
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import TrainState

_DOT = re.compile(r"= (\w+)\[[\d,]*\]\{[^}]*\} dot\(%([\w.\-]+), %([\w.\-]+)\)")
_VALUE = re.compile(r"%([\w.\-]+) = (\w+)\[")
_SHAPE = re.compile(r"%([\w.\-]+) = \w+\[([\d,]*)\]")
_DIMS = re.compile(r"dot\(%([\w.\-]+), %[\w.\-]+\)(?:, lhs_batch_dims=\{([\d,]*)\})?, "
                   r"lhs_contracting_dims=\{([\d,]*)\}(?:, rhs_batch_dims=\{[\d,]*\})?, "
                   r"rhs_contracting_dims=\{([\d,]*)\}")


def dot_types(hlo: str) -> list[tuple[str, str, str]]:
  """(lhs, rhs, result) element types of every dot in an optimised HLO module."""
  found = []
  for computation in re.split(r"\n(?=%?[\w.\-]+ \(|ENTRY)", hlo):
    types = dict(_VALUE.findall(computation))
    found += [(types.get(lhs), types.get(rhs), out) for out, lhs, rhs in _DOT.findall(computation)]
  return found


def non_canonical_dots(hlo: str) -> tuple[int, int]:
  """(dots, dots not contracting lhs's last and rhs's first non-batch dimension)."""
  dots = bad = 0
  for computation in re.split(r"\n(?=%?[\w.\-]+ \(|ENTRY)", hlo):
    ranks = {name: len(dims.split(",")) if dims else 0
             for name, dims in _SHAPE.findall(computation)}
    for lhs, lhs_batch, lhs_contracting, rhs_contracting in _DIMS.findall(computation):
      batch = len(lhs_batch.split(",")) if lhs_batch else 0
      dots += 1
      bad += (lhs_contracting != str(ranks[lhs] - 1) or rhs_contracting != str(batch))
  return dots, bad


@functools.lru_cache(maxsize=None)  # both tests read the bf16_fast steps: compile each once
def step_hlo(config, vocab):
  rng = np.random.default_rng(0)
  targets = rng.integers(2, vocab, (4, 32), dtype=np.int32)
  batch = {"encoder_input_tokens": rng.integers(2, vocab, (4, 64), dtype=np.int32),
           "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
           "decoder_target_tokens": targets,
           "decoder_loss_weights": np.ones((4, 32), np.float32)}
  model = EncoderDecoderModel(config)
  params = jax.jit(lambda r, b: nn.unbox(model.init(r, b)))(jax.random.key(0), batch)
  optimizer = optimizers.adafactor(learning_rate=1e-3)
  step = jax.jit(make_train_step(model, optimizer))
  state = TrainState.create(params, optimizer)
  return step.lower(state, batch, jax.random.key(1)).compile().as_text()


def tied_t5(size, **overrides):
  """T5 v1.1-tiny's shapes with v1.0's ReLU MLP and tied output layer (v1.0 has no tiny)."""
  return dataclasses.replace(t5_1_1_config(size, **overrides), mlp_activations=("relu",),
                             logits_via_embedding=True)


@pytest.mark.parametrize("make, vocab", [(t5_1_1_config, 128), (tied_t5, 128),
                                         (prost_config, 128)],
                         ids=["t5_1_1", "t5_1_0_tied_head", "prost"])
def test_every_dot_of_a_bf16_fast_step_is_bf16_to_f32(make, vocab):
  config = make("tiny", vocab_size=vocab, dtype="bfloat16", matmul="bf16_fast")
  types = dot_types(step_hlo(config, vocab))
  # Forward and backward of every projection and both attention products per layer.
  assert len(types) > 30
  assert set(types) == {("bf16", "bf16", "f32")}, sorted(set(types))


def test_plain_bf16_dots_are_not_all_on_the_fast_path():
  # The check above can fail: XLA's own bf16 step has other dot types.
  config = t5_1_1_config("tiny", vocab_size=128, dtype="bfloat16", matmul="xla")
  assert set(dot_types(step_hlo(config, 128))) != {("bf16", "bf16", "f32")}


@pytest.mark.parametrize("make", [t5_1_1_config, prost_config], ids=["t5_1_1", "prost"])
def test_every_dot_of_a_fast_step_is_canonical(make):
  for dtype, matmul in (("float32", "f32_fast"), ("bfloat16", "bf16_fast")):
    dots, bad = non_canonical_dots(step_hlo(make("tiny", vocab_size=128, dtype=dtype,
                                                 matmul=matmul), 128))
    assert dots > 100 and bad == 0, (matmul, dots, bad)
  # The check can fail: XLA's own f32 step contracts transposed operands (86 of 147 dots).
  dots, bad = non_canonical_dots(step_hlo(make("tiny", vocab_size=128), 128))
  assert bad > dots // 3
