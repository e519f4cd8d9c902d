"""Joining a multi-process job: one call, before JAX touches a device.

A job spans several processes on a TPU pod slice (one per host), on a GPU
cluster (one per host or per GPU) and in the tests (CPU processes on one
machine). Each process must call `jax.distributed.initialize` with the same
coordinator and process count and its own id before any JAX computation; after
that `jax.devices()` lists every process's devices and one mesh spans them all.
Where the settings come from (first match wins):

1. explicit settings, for GPU clusters launched by hand or by a scheduler other
   than SLURM: gin (`initialize_from_environment.coordinator_address` /
   `.num_processes` / `.process_id`), else the environment variables
   PROSOCIAL_JAX_COORDINATOR ('host:port' of process 0) /
   PROSOCIAL_JAX_NUM_PROCESSES / PROSOCIAL_JAX_PROCESS_ID;
2. an `srun` step of SLURM with more than one task (`slurm_group`): the
   coordinator is the step's first node, the processes its tasks
   (SLURM_NTASKS, SLURM_PROCID); a node running one task uses all its GPUs, a
   node running several gives each task one GPU (its SLURM_LOCALID);
3. a Cloud TPU VM: no arguments, JAX reads the slice's workers from the TPU
   metadata (on a single-host slice that gives one process, which is harmless);
4. anything else: a single process, nothing to initialise.

`initialize_from_environment.cluster` forces one of these ('explicit', 'slurm',
'tpu', 'none'); the default 'auto' detects as above.

Why SLURM is mapped here and not left to JAX's detector: that detector always
restricts a process to the single GPU numbered by its SLURM_LOCALID, so a job of
one task per node (8 GPUs each) would train on one GPU per node, and a task whose
GPUs SLURM already bound (`--gpus-per-task=1`: CUDA_VISIBLE_DEVICES holds one id)
would ask for a device it cannot see. Explicit and SLURM settings are therefore
passed complete, with JAX's detection off; where they leave the devices open (all
of them), `$JAX_LOCAL_DEVICE_IDS` (read by JAX) still restricts them by hand.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import logging
import os
import re
from typing import Mapping

import gin
import jax

logger = logging.getLogger("prosocial_jax")

CLUSTERS = ("auto", "explicit", "slurm", "tpu", "none")
ENV_COORDINATOR = "PROSOCIAL_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "PROSOCIAL_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "PROSOCIAL_JAX_PROCESS_ID"
# What JAX's SLURM detector reads; all are set inside an `srun` step.
_SLURM_STEP_VARIABLES = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
                         "SLURM_PROCID", "SLURM_LOCALID")
# Set on GKE TPU nodes and multislice jobs; a GCE TPU VM is recognised by its chips.
_TPU_VARIABLES = ("TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES",
                  "MEGASCALE_COORDINATOR_ADDRESS")


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
  """How this process joins the job: `cluster` names the source of the settings.

  `local_device_ids`: the GPUs this process uses (None: all it can see).
  """
  cluster: str
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  local_device_ids: tuple[int, ...] | None = None


def on_cloud_tpu_vm() -> bool:
  """A TPU VM: libtpu installed (jax[tpu]) and TPU chips attached (/dev/accel*, /dev/vfio/N)."""
  if importlib.util.find_spec("libtpu") is None:
    return False
  return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
  value = environ.get(name, "")
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"${name} must be an integer, got {value!r}.") from None


def _explicit_group(coordinator_address, num_processes, process_id) -> ProcessGroup:
  if num_processes is None:
    raise ValueError(
        "A multi-process job needs its number of processes: set "
        f"initialize_from_environment.num_processes or ${ENV_NUM_PROCESSES} on every process.")
  if num_processes < 1:
    raise ValueError(f"The number of processes must be at least 1, got {num_processes}.")
  if num_processes == 1:
    return ProcessGroup("none")
  missing = [f"{gin_name} (or ${env})" for value, gin_name, env in (
      (coordinator_address, "initialize_from_environment.coordinator_address", ENV_COORDINATOR),
      (process_id, "initialize_from_environment.process_id", ENV_PROCESS_ID))
      if value is None]
  if missing:
    raise ValueError(f"A job of {num_processes} processes needs " + " and ".join(missing) +
                     " on every process.")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"Process id {process_id} is outside 0..{num_processes - 1} "
                     f"(the job has {num_processes} processes).")
  return ProcessGroup("explicit", coordinator_address, num_processes, process_id)


def _first_host(nodelist: str) -> str:
  """The first host of a SLURM host list: 'gpu[07-08,12],cpu1' -> 'gpu07'."""
  host, in_brackets, skipping = [], False, False
  for ch in nodelist.strip():
    if ch == "[":
      in_brackets, skipping = True, False
    elif ch == "]":
      in_brackets = False
    elif in_brackets:
      skipping = skipping or ch in ",-"
      if not skipping:
        host.append(ch)
    elif ch == ",":
      break
    else:
      host.append(ch)
  if not host:
    raise ValueError(f"Cannot read a host from the SLURM node list {nodelist!r}.")
  return "".join(host)


def _tasks_per_node(spec: str) -> list[int]:
  """SLURM's compressed counts: '8(x2),4' -> [8, 8, 4]."""
  counts = []
  for part in spec.split(","):
    match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
    if not match:
      raise ValueError(f"Cannot read SLURM's tasks per node {spec!r}.")
    counts += [int(match.group(1))] * int(match.group(2) or 1)
  return counts


def _tasks_on_this_node(environ: Mapping[str, str]) -> int | None:
  spec = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
  node = _env_int(environ, "SLURM_NODEID")
  if spec and node is not None:
    counts = _tasks_per_node(spec)
    if node < len(counts):
      return counts[node]
  return _env_int(environ, "SLURM_NTASKS_PER_NODE")


def slurm_group(environ: Mapping[str, str]) -> ProcessGroup:
  """This task's place in an `srun` step, as jax.distributed arguments.

  coordinator: the step's first node, port $JAX_COORDINATOR_PORT or one derived
  from the job id (JAX's own rule, so every task agrees); processes: SLURM_NTASKS;
  id: SLURM_PROCID; devices: all of the node's GPUs when the node runs one task,
  else the task's own GPU (SLURM_LOCALID, or the one GPU that SLURM left visible).
  """
  missing = [v for v in _SLURM_STEP_VARIABLES if v not in environ]
  if missing:
    raise ValueError("A SLURM job is joined from inside an srun step (one task per node or "
                     "per GPU); missing: " + ", ".join(f"${v}" for v in missing) + ".")
  job_id = _env_int(environ, "SLURM_JOB_ID")
  port = environ.get("JAX_COORDINATOR_PORT") or str(job_id % 2**12 + 65536 - 2**12)
  num_processes = _env_int(environ, "SLURM_NTASKS")
  process_id = _env_int(environ, "SLURM_PROCID")
  local_device_ids = None
  if _tasks_on_this_node(environ) != 1:
    visible = [d for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if len(visible) != 1:  # one visible GPU (bound by SLURM) is already this task's own
      local_device_ids = (_env_int(environ, "SLURM_LOCALID"),)
  return ProcessGroup("slurm", f"{_first_host(environ['SLURM_STEP_NODELIST'])}:{port}",
                      num_processes, process_id, local_device_ids)


def detect_process_group(*, cluster: str = "auto", coordinator_address: str | None = None,
                         num_processes: int | None = None, process_id: int | None = None,
                         environ: Mapping[str, str] | None = None) -> ProcessGroup:
  """Decides how to join the job (module docstring); reads the environment, starts nothing."""
  if cluster not in CLUSTERS:
    raise ValueError(f"initialize_from_environment.cluster must be one of {CLUSTERS}, "
                     f"got {cluster!r}.")
  environ = os.environ if environ is None else environ
  coordinator_address = coordinator_address or environ.get(ENV_COORDINATOR) or None
  if num_processes is None:
    num_processes = _env_int(environ, ENV_NUM_PROCESSES)
  if process_id is None:
    process_id = _env_int(environ, ENV_PROCESS_ID)
  explicit = any(v is not None for v in (coordinator_address, num_processes, process_id))
  if cluster == "explicit" or (cluster == "auto" and explicit):
    return _explicit_group(coordinator_address, num_processes, process_id)
  slurm_step = (all(v in environ for v in _SLURM_STEP_VARIABLES)
                and (_env_int(environ, "SLURM_NTASKS") or 1) > 1)
  if cluster == "slurm" or (cluster == "auto" and slurm_step):
    return slurm_group(environ)
  tpu = any(environ.get(v) for v in _TPU_VARIABLES) or on_cloud_tpu_vm()
  if cluster == "tpu" or (cluster == "auto" and tpu):
    return ProcessGroup("tpu")
  return ProcessGroup("none")


@gin.configurable
def initialize_from_environment(*, cluster: str = "auto",
                                coordinator_address: str | None = None,
                                num_processes: int | None = None,
                                process_id: int | None = None,
                                initialization_timeout: int = 900) -> ProcessGroup:
  """Joins the job this process belongs to, if it is one of several (module docstring).

  `initialization_timeout` (seconds) is how long the processes wait for each
  other: after a cold restart of a pod, hosts come up minutes apart, longer than
  JAX's default 300 s.
  """
  group = detect_process_group(cluster=cluster, coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  if group.cluster != "none":
    # CPU processes exchange data through gloo (XLA:CPU has no collectives
    # otherwise); the setting only concerns the CPU backend, so GPU/TPU jobs are unaffected.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    complete = group.cluster in ("explicit", "slurm")  # JAX's detection off (module docstring)
    jax.distributed.initialize(
        coordinator_address=group.coordinator_address, num_processes=group.num_processes,
        process_id=group.process_id,
        local_device_ids=list(group.local_device_ids) if group.local_device_ids else None,
        cluster_detection_method="deactivate" if complete else None,
        initialization_timeout=initialization_timeout)
  logger.info("JAX process %d of %d (%s): %d local devices, %d global devices (%s).",
              jax.process_index(), jax.process_count(),
              group.cluster if group.cluster != "none" else "single process",
              jax.local_device_count(), jax.device_count(), jax.default_backend())
  return group
