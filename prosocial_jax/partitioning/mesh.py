"""Device mesh construction.

The mesh always has the same three named axes, so logical-axis rules never need
to know how many devices there are:

  data   pure data parallelism (parameters replicated)
  fsdp   data parallelism with parameters and optimizer state sharded (ZeRO-3 style)
  model  tensor parallelism (heads / mlp / vocab split across devices)

A single CPU gives a 1x1x1 mesh; the same code then runs unchanged on a pod slice.
"""

from __future__ import annotations

import dataclasses
import math

import gin
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh

from prosocial_jax.user_errors import UserError

MESH_AXES = ("data", "fsdp", "model")


class MeshShapeError(UserError, ValueError):
  """A MeshShape that does not fit the devices (the message says how)."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MeshShape:
  """Sizes of the mesh axes; one of them may be -1 (= all remaining devices)."""

  data: int = -1
  fsdp: int = 1
  model: int = 1

  def resolve(self, num_devices: int) -> tuple[int, int, int]:
    sizes = [self.data, self.fsdp, self.model]
    if any(s == 0 or s < -1 for s in sizes):
      raise MeshShapeError(f"Mesh axis sizes must be positive or -1, got {self}.")
    wildcards = [i for i, s in enumerate(sizes) if s == -1]
    if len(wildcards) > 1:
      raise MeshShapeError(f"At most one mesh axis may be -1, got {self}.")
    known = math.prod(s for s in sizes if s != -1)
    if wildcards:
      if num_devices % known:
        raise MeshShapeError(
            f"{num_devices} devices cannot be split into a mesh {self}: "
            f"{num_devices} is not divisible by {known}.")
      sizes[wildcards[0]] = num_devices // known
    if math.prod(sizes) != num_devices:
      raise MeshShapeError(
          f"Mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices "
          f"but {num_devices} are available.")
    return tuple(sizes)


def create_mesh(shape: MeshShape | None = None, devices=None) -> Mesh:
  """Builds a ('data', 'fsdp', 'model') mesh over `devices` (default: all)."""
  shape = shape or MeshShape()
  devices = list(devices if devices is not None else jax.devices())
  sizes = shape.resolve(len(devices))
  try:
    # Topology-aware placement on TPU/GPU (keeps 'model' on the fastest links).
    device_array = mesh_utils.create_device_mesh(
        sizes, devices=devices)
  except Exception:  # CPU and odd counts: plain row-major order is fine.
    device_array = np.asarray(devices).reshape(sizes)
  return Mesh(device_array, MESH_AXES)
