"""One process of a multi-process job that checks global batches on every mesh.

    PROSOCIAL_JAX_COORDINATOR=... PROSOCIAL_JAX_NUM_PROCESSES=N PROSOCIAL_JAX_PROCESS_ID=i \\
      python tests/training/multihost_global_batches.py DATA,FSDP,MODEL ...

Joins the job through `initialize_from_environment`, then for each mesh assembles
a global batch from rows that say which host they came from, and checks that
every process sees the same batch: each host's rows exactly once, hosts in order.
Prints one `ok <mesh>` line per mesh; exits non-zero at the first mismatch.
"""

import sys

import jax
import numpy as np
from jax.experimental import multihost_utils

from prosocial_jax.partitioning import MeshShape, batch_sharding, create_mesh
from prosocial_jax.partitioning.distributed import initialize_from_environment
from prosocial_jax.train import setup_logging
from prosocial_jax.training.input_pipeline import to_global_arrays

ROWS_PER_HOST = 4
LENGTHS = {"inputs": 3, "targets": 2}  # features of different lengths, as in a real batch


def host_batch(process: int) -> dict[str, np.ndarray]:
  """Row r of host p holds 100 p + r everywhere."""
  rows = 100 * process + np.arange(ROWS_PER_HOST, dtype=np.int32)[:, None]
  return {name: np.repeat(rows, length, axis=1) for name, length in LENGTHS.items()}


def main(meshes):
  setup_logging()
  initialize_from_environment()
  hosts = [host_batch(p) for p in range(jax.process_count())]
  expected = {name: np.concatenate([h[name] for h in hosts]) for name in LENGTHS}
  for spec in meshes:
    shape = MeshShape(*(int(size) for size in spec.split(",")))
    sharding = batch_sharding(create_mesh(shape))
    batch = to_global_arrays(host_batch(jax.process_index()), sharding)
    for name in LENGTHS:
      seen = multihost_utils.process_allgather(batch[name], tiled=True)  # whole, on every host
      if not np.array_equal(seen, expected[name]):
        sys.exit(f"mesh {spec}: global {name} of shape {seen.shape}, rows "
                 f"{seen[:, 0].tolist()}; expected rows {expected[name][:, 0].tolist()}")
    print(f"ok {spec}", flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
