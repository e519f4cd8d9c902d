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
  with pytest.raises(ValueError, match=message):
    create_mesh(shape)


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
