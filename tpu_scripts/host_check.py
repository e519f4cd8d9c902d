"""Run on every host of a slice at once (setup_hosts.py does): joins the job the way
training does, runs one collective, and prints one line

  PROSOCIAL_JAX_HOST {"worker": ..., "process_index": ..., "platform": "tpu", ...}

with what setup_hosts.py compares across hosts: the process index and count (separate
single-host VMs all report process 0 of 1), the devices (a chip held by another
process makes JAX fall back to the CPU), and the versions of jax, jaxlib, libtpu and
the other pinned packages, and the commit.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import socket
import sys
from pathlib import Path

PACKAGES = ("jax", "jaxlib", "libtpu", "libtpu-nightly", "flax", "optax", "orbax-checkpoint",
            "tensorflow", "seqio", "prosocial_jax")


def versions() -> dict[str, str]:
  found = {}
  for name in PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def report(timeout_s: int) -> dict:
  from prosocial_jax.partitioning import distributed
  group = distributed.initialize_from_environment(initialization_timeout=timeout_s)
  import jax
  import numpy as np
  from jax.experimental import multihost_utils
  # Every process contributes its index: all of them must see 0..n-1.
  indices = multihost_utils.process_allgather(np.array([jax.process_index()]))
  commit_file = Path(__file__).resolve().parents[1] / "COMMIT"
  return dict(
      worker=os.environ.get("PROSOCIAL_JAX_WORKER", ""), hostname=socket.gethostname(),
      cluster=group.cluster, process_index=jax.process_index(),
      process_count=jax.process_count(), local_device_count=jax.local_device_count(),
      device_count=jax.device_count(), platform=jax.default_backend(),
      device_kind=jax.devices()[0].device_kind,
      allgather=[int(i) for i in np.asarray(indices).reshape(-1)],
      commit=commit_file.read_text().strip() if commit_file.exists() else "",
      versions=versions())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--timeout_s", type=int, default=900,
                      help="how long the hosts wait for each other (jax.distributed)")
  args = parser.parse_args(argv)
  print("PROSOCIAL_JAX_HOST " + json.dumps(report(args.timeout_s), sort_keys=True), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
