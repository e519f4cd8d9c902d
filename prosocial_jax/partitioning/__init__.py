"""Mesh construction and logical-axis rules (the only place that knows the mesh)."""

from prosocial_jax.partitioning.mesh import MESH_AXES, MeshShape, create_mesh
from prosocial_jax.partitioning.rules import (STANDARD_LOGICAL_AXIS_RULES,
                                              batch_sharding,
                                              logical_axis_rules,
                                              logical_to_sharding)
