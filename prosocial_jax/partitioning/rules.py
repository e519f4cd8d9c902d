"""Logical-axis rules: the one table that maps model axis names to mesh axes.

Layers only name their axes (`embed`, `mlp`, `heads`, ...); this table decides
where each lands on the ('data', 'fsdp', 'model') mesh. Change the table, not
the model, to change the parallelism.
"""

from __future__ import annotations

import math

import flax.linen as nn
import gin
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# (logical axis, mesh axis or axes or None). First matching mesh axis that is
# still free wins, as in flax.linen.logical_to_mesh_axes.
STANDARD_LOGICAL_AXIS_RULES: tuple[tuple[str, object], ...] = (
    # Activations.
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("kv", None),
    # Parameters: tensor-parallel dimensions on 'model', the other one on 'fsdp'.
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("embed", "fsdp"),
    ("relpos_buckets", None),
    ("layers", None),  # the stacked-layer axis of scan-over-layers parameters
    ("abspos_buckets", None),
)


@gin.configurable
def logical_axis_rules(additional_rules=()):
  """The rules in force: user overrides (gin) first, then the standard table."""
  return tuple(additional_rules) + STANDARD_LOGICAL_AXIS_RULES


def logical_to_sharding(logical_spec_tree, mesh: Mesh, rules=None):
  """Maps a tree of logical PartitionSpecs to NamedShardings on `mesh`."""
  rules = rules if rules is not None else logical_axis_rules()
  mesh_specs = nn.logical_to_mesh(logical_spec_tree, rules)
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), mesh_specs,
                      is_leaf=lambda x: isinstance(x, PartitionSpec))


def batch_sharding(mesh: Mesh, rules=None) -> NamedSharding:
  """Sharding of a [batch, ...] input array: batch split over data+fsdp."""
  rules = rules if rules is not None else logical_axis_rules()
  return NamedSharding(mesh, nn.logical_to_mesh_axes(("batch",), rules))


def spec_axes(mesh: Mesh, entry) -> tuple[tuple[str, ...], int]:
  """One PartitionSpec entry's mesh axes and how many pieces they cut its dimension in."""
  axes = (entry,) if isinstance(entry, str) else tuple(entry or ())
  return axes, int(math.prod(mesh.shape[axis] for axis in axes))


def batch_shards(mesh: Mesh, rules=None) -> int:
  """How many pieces `batch_sharding` cuts a batch into (data x fsdp with the standard
  rules): every batch size on this mesh must be a multiple of it."""
  return spec_axes(mesh, batch_sharding(mesh, rules).spec[0])[1]
