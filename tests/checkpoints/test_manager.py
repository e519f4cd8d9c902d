import jax
import numpy as np
import optax
import pytest

from prosocial_jax.checkpoints.manager import (CheckpointMismatchError, Checkpointer,
                                               check_compatible, param_shapes)
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.models.registry import config_to_dict
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


def test_restore_onto_another_mesh(tmp_path):
  mesh_1 = create_mesh(MeshShape(), devices=jax.devices()[:1])
  state, _, _ = _state(mesh_1)
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(1, state, {})
  checkpointer.wait_until_finished()
  mesh_8 = create_mesh(MeshShape(data=2, fsdp=2, model=2))
  _, abstract, shardings = _state(mesh_8)
  restored = checkpointer.restore(1, abstract_target(abstract, shardings))
  _assert_trees_equal(state, restored)
  kernel = restored.params["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
  assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "model")


def _abstract(config):
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  abstract, _ = state_shardings(EncoderDecoderModel(config), optax.adam(1e-3), dummy_batch_shapes(),
                                mesh)
  return abstract


def _meta(config, abstract, sha="a" * 64):
  return {"model_config": config_to_dict(config), "param_shapes": param_shapes(abstract.params),
          "vocabulary": {"source": "v.model", "sha256": sha}}


def test_another_model_shape_is_refused_with_a_readable_message():
  small, wide = tiny_test_config(), tiny_test_config(emb_dim=32)
  abstract_small, abstract_wide = _abstract(small), _abstract(wide)
  with pytest.raises(CheckpointMismatchError) as error:
    check_compatible(_meta(small, abstract_small), _meta(wide, abstract_wide),
                     model_dir="/runs/x", step=300)
  message = str(error.value)
  assert "/runs/x holds a checkpoint (step 300) of another model" in message
  assert "decoder/decoder_norm/scale: checkpoint [16], this run [32]" in message
  assert "model_config.emb_dim: checkpoint has 16, this run has 32" in message


def test_another_vocabulary_is_refused():
  config = tiny_test_config()
  abstract = _abstract(config)
  with pytest.raises(CheckpointMismatchError, match="vocabulary: checkpoint was trained with"):
    check_compatible(_meta(config, abstract, "a" * 64), _meta(config, abstract, "b" * 64),
                     model_dir="/runs/x", step=1)


def test_config_change_that_keeps_shapes_is_allowed(caplog):
  config = tiny_test_config()
  abstract = _abstract(config)
  check_compatible(_meta(config, abstract), _meta(tiny_test_config(dropout_rate=0.1), abstract),
                   model_dir="/runs/x", step=1)
  assert "dropout_rate" in caplog.text


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
