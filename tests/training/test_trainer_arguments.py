"""`train(...)` rejects bad settings before it reads any data or builds a model."""

import pytest

from prosocial_jax.training.trainer import train


def test_unknown_eval_decode_weights_fail_first(tmp_path):
  with pytest.raises(ValueError, match=r"train.eval_decode_weights must be one of "
                                       r"\('float32', 'bfloat16', 'int8'\) or None, got 'fp8'"):
    train(model_dir=str(tmp_path / "run"), mixture_or_task_name="no_such_task",
          task_feature_lengths={"inputs": 8, "targets": 8}, train_steps=1, batch_size=1,
          model_config=None, optimizer=None, eval_decode_weights="fp8")
  assert not (tmp_path / "run").exists()  # nothing was written


@pytest.mark.parametrize("sizes, named", [
    (dict(batch_size=12), "BATCH_SIZE=12"),
    (dict(batch_size=8, eval_every=5, eval_batch_size=4), "train.eval_batch_size=4"),
])
def test_a_batch_that_does_not_split_over_the_mesh_is_refused_by_name(tmp_path, sizes, named):
  import jax

  from prosocial_jax.data.data_root import sample_data_root
  from prosocial_jax.partitioning import MeshShape
  from prosocial_jax.user_errors import UserError, message_of
  from .conftest import TRAIN_LENGTHS, sample_model_config
  assert jax.device_count() == 8  # tests/conftest.py's simulated devices
  with pytest.raises(UserError) as error:  # one line at the command line, no traceback
    train(model_dir=str(tmp_path / "run"), mixture_or_task_name="prosocial_dialog_canary",
          task_feature_lengths=TRAIN_LENGTHS, train_steps=1, model_config=sample_model_config(),
          optimizer=None, data_root=sample_data_root(), mesh_shape=MeshShape(data=4, fsdp=2),
          eval_at_end=False, **sizes)
  assert message_of(error.value) == (
      f"{named} does not split over the mesh's 8 batch shards ({{'data': 4, 'fsdp': 2, "
      "'model': 1}, the batch split over data x fsdp): make it a multiple of 8, or set "
      "MeshShape.data / .fsdp for fewer shards.")
  assert not (tmp_path / "run").exists()  # refused before anything was written


def test_batch_shards_follow_the_rules_not_a_fixed_pair_of_axes():
  import jax

  from prosocial_jax.partitioning import MeshShape, batch_shards, create_mesh, logical_axis_rules
  mesh = create_mesh(MeshShape(data=2, fsdp=2, model=2))
  assert batch_shards(mesh) == 4
  assert batch_shards(mesh, logical_axis_rules([("batch", "data")])) == 2
  assert batch_shards(mesh, logical_axis_rules([("batch", None)])) == 1
  assert jax.device_count() == 8
