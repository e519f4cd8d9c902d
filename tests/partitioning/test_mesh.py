import flax.linen as nn
import jax
import pytest
from jax.sharding import PartitionSpec as P

from prosocial_jax.partitioning import (MeshShape, batch_sharding, create_mesh,
                                        logical_axis_rules, logical_to_sharding)


def test_simulated_devices_are_available():
  assert jax.device_count() == 8


@pytest.mark.parametrize("shape, expected", [
    (MeshShape(), (8, 1, 1)),
    (MeshShape(data=2, fsdp=-1, model=2), (2, 2, 2)),
    (MeshShape(data=1, fsdp=1, model=-1), (1, 1, 8)),
])
def test_mesh_axis_sizes(shape, expected):
  mesh = create_mesh(shape)
  assert mesh.axis_names == ("data", "fsdp", "model")
  assert tuple(mesh.shape.values()) == expected


def test_single_device_mesh():
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  assert tuple(mesh.shape.values()) == (1, 1, 1)


@pytest.mark.parametrize("shape, message", [
    (MeshShape(data=3, fsdp=-1), "not divisible by 3"),
    (MeshShape(data=2, fsdp=2, model=1), "needs 4 devices but 8"),
    (MeshShape(data=-1, fsdp=-1), "At most one mesh axis may be -1"),
    (MeshShape(data=0), "positive or -1"),
])
def test_bad_mesh_shapes_are_explained(shape, message):
  from prosocial_jax.user_errors import UserError
  with pytest.raises(UserError, match=message):  # one line at the command line
    create_mesh(shape)


def test_a_parameter_that_does_not_split_over_the_mesh_is_named_with_its_config_field():
  import optax

  from prosocial_jax.inference.model import EncoderDecoderModel
  from prosocial_jax.training.train_state import ShardingError, state_shardings
  from ..training.conftest import dummy_batch_shapes, tiny_test_config
  model = EncoderDecoderModel(tiny_test_config(num_heads=2))  # 2 heads over 8 devices
  with pytest.raises(ShardingError) as error:
    state_shardings(model, optax.adam(1e-3), dummy_batch_shapes(),
                    create_mesh(MeshShape(data=1, fsdp=1, model=8)))
  assert str(error.value) == (
      "Parameter decoder/relpos_bias/rel_embedding [2, 32]: its 'heads' axis (2) does not "
      "split over mesh axis model (8 devices, mesh {'data': 1, 'fsdp': 1, 'model': 8}). Make "
      "num_heads a multiple of 8, or choose a mesh whose model divides 2.")
  # The same model on a mesh it splits over: no error.
  state_shardings(model, optax.adam(1e-3), dummy_batch_shapes(),
                  create_mesh(MeshShape(data=4, fsdp=1, model=2)))


def test_standard_rules_map_logical_axes():
  mesh = create_mesh(MeshShape(data=2, fsdp=2, model=2))
  specs = {"embedding": P("vocab", "embed"), "wi": P("embed", "mlp"),
           "scale": P("embed"), "bias": P("heads", "relpos_buckets")}
  shardings = logical_to_sharding(specs, mesh)
  assert shardings["embedding"].spec == P("model", "fsdp")
  assert shardings["wi"].spec == P("fsdp", "model")
  assert shardings["scale"].spec == P("fsdp")
  assert shardings["bias"].spec == P("model", None)
  assert batch_sharding(mesh).spec == P(("data", "fsdp"))


def test_gin_style_overrides_take_precedence():
  rules = logical_axis_rules(additional_rules=(("embed", None),))
  assert nn.logical_to_mesh_axes(("embed", "mlp"), rules) == P(None, "model")
