"""Mesh construction and logical-axis rules (the only place that knows the mesh).

`distributed.initialize_from_environment` joins a multi-process job; the entry
point calls it before anything touches a device.
"""

from prosocial_jax.partitioning.mesh import MESH_AXES, MeshShape, create_mesh
from prosocial_jax.partitioning.rules import (STANDARD_LOGICAL_AXIS_RULES,
                                              batch_shards,
                                              batch_sharding,
                                              logical_axis_rules,
                                              logical_to_sharding,
                                              spec_axes)
