import math

import jax
import numpy as np
import optax
import pytest

from prosocial_jax.checkpoints.manager import Checkpointer
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.partitioning import MeshShape, create_mesh
from prosocial_jax.training.train_state import (abstract_target, init_train_state,
                                                state_shardings)

from ..training.conftest import dummy_batch_shapes, tiny_test_config


def _state(mesh, config=None, seed=0):
  model = EncoderDecoderModel(config or tiny_test_config())
  optimizer = optax.adam(1e-3)
  abstract, shardings = state_shardings(model, optimizer, dummy_batch_shapes(), mesh)
  state = init_train_state(model, optimizer, dummy_batch_shapes(), jax.random.key(seed), mesh)
  return state, abstract, shardings


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_save_then_restore_gives_identical_state(tmp_path):
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  state, abstract, shardings = _state(mesh)
  state = state.replace(step=state.step + 7)
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(7, state, {"note": "hello"})
  checkpointer.wait_until_finished()
  assert checkpointer.latest_step() == 7
  assert checkpointer.read_meta(7) == {"note": "hello"}
  restored = Checkpointer(str(tmp_path)).restore(7, abstract_target(abstract, shardings))
  _assert_trees_equal(state, restored)  # optimizer state keeps its structure too
  assert int(restored.step) == int(state.step)


# Every sharded dimension divisible by 8 (heads, mlp, vocab, embed).
EIGHT_WAY = dict(num_heads=8, head_dim=2)


@pytest.fixture(scope="module")
def saved_on_8_data_devices(tmp_path_factory):
  mesh = create_mesh(MeshShape(data=8, fsdp=1, model=1))
  state, _, _ = _state(mesh, tiny_test_config(**EIGHT_WAY))
  checkpointer = Checkpointer(str(tmp_path_factory.mktemp("mesh8")))
  checkpointer.save(1, state, {})
  checkpointer.wait_until_finished()
  return checkpointer, jax.device_get(state)


@pytest.mark.parametrize("shape, kernel_spec", [
    ((2, 4, 1), ("fsdp", None)),
    ((1, 1, 8), (None, "model")),
    ((1, 1, 1), (None, None)),
])
def test_restore_onto_another_mesh(saved_on_8_data_devices, shape, kernel_spec):
  checkpointer, saved = saved_on_8_data_devices
  devices = jax.devices()[:math.prod(shape)]
  mesh = create_mesh(MeshShape(*shape), devices=devices)
  _, abstract, shardings = _state(mesh, tiny_test_config(**EIGHT_WAY))
  restored = checkpointer.restore(1, abstract_target(abstract, shardings))
  _assert_trees_equal(saved, restored)
  kernel = restored.params["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]  # [embed, mlp]
  assert kernel.sharding.mesh.shape == dict(zip(("data", "fsdp", "model"), shape))
  expected = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*kernel_spec))
  assert kernel.sharding.is_equivalent_to(expected, kernel.ndim)
  # Adam's moments follow their parameters onto the new mesh.
  mu = restored.opt_state[0].mu["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
  assert mu.sharding.is_equivalent_to(expected, mu.ndim)


class _CountingIterator:
  """Stands in for the input pipeline: its whole state is one number."""

  def __init__(self):
    self.position = 0

  def save(self, prefix):
    with open(prefix + ".txt", "w") as f:
      f.write(str(self.position))

  def restore(self, prefix):
    with open(prefix + ".txt") as f:
      self.position = int(f.read())


def test_input_position_is_saved_at_save_time_and_restored(tmp_path):
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  state, _, _ = _state(mesh)
  iterator = _CountingIterator()
  iterator.position = 5
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(5, state, {}, input_iterator=iterator)
  iterator.position = 9  # the trainer moves on while the state is written
  checkpointer.save(6, state, {})
  checkpointer.wait_until_finished()
  assert checkpointer.has_input_state(5) and not checkpointer.has_input_state(6)
  fresh = _CountingIterator()
  checkpointer.restore_input(5, fresh)
  assert fresh.position == 5


def test_best_is_the_lowest_recorded_perplexity_else_the_latest_said_aloud(tmp_path, caplog):
  import logging

  from prosocial_jax.checkpoints.stored import choose_step
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  state, _, _ = _state(mesh)
  checkpointer = Checkpointer(str(tmp_path))
  for step in (1, 2, 3):
    checkpointer.save(step, state, {})
  checkpointer.wait_until_finished()
  with caplog.at_level(logging.WARNING, logger="prosocial_jax"):
    assert choose_step(checkpointer, "best") == 3
  assert (f"{tmp_path} records no validation perplexity with any checkpoint (a run with "
          "train.keep_best does): step 'best' is the latest, 3.") in caplog.text
  scored = Checkpointer(str(tmp_path / "scored"), keep_best=True, max_to_keep=None)
  for step, perplexity in ((1, 9.0), (2, 4.0), (3, 6.0)):
    scored.save(step, state, {}, metrics={"perplexity": perplexity})
  scored.wait_until_finished()
  caplog.clear()
  assert choose_step(scored, "best") == 2 and not caplog.text
