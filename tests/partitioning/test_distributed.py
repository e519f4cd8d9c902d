"""How a process decides to join a multi-process job (the real join: test_multihost.py)."""

import jax
import pytest

from prosocial_jax.partitioning import distributed
from prosocial_jax.partitioning.distributed import ProcessGroup, detect_process_group

EXPLICIT = {"PROSOCIAL_JAX_COORDINATOR": "10.0.0.1:1234", "PROSOCIAL_JAX_NUM_PROCESSES": "4",
            "PROSOCIAL_JAX_PROCESS_ID": "2"}
SLURM_STEP = {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_NTASKS": "16",
              "SLURM_PROCID": "3", "SLURM_LOCALID": "3"}


@pytest.fixture(autouse=True)
def _not_on_a_tpu_vm(monkeypatch):
  monkeypatch.setattr(distributed, "on_cloud_tpu_vm", lambda: False)


def test_a_plain_process_is_alone():
  assert detect_process_group(environ={}) == ProcessGroup("none")


def test_explicit_settings_from_the_environment():
  assert detect_process_group(environ=EXPLICIT) == ProcessGroup("explicit", "10.0.0.1:1234", 4, 2)


def test_gin_settings_win_over_the_environment():
  group = detect_process_group(coordinator_address="10.0.0.9:99", process_id=0, environ=EXPLICIT)
  assert group == ProcessGroup("explicit", "10.0.0.9:99", 4, 0)


def test_explicit_settings_beat_slurm_and_one_process_is_alone():
  assert detect_process_group(environ={**SLURM_STEP, **EXPLICIT}).cluster == "explicit"
  assert detect_process_group(num_processes=1, environ=EXPLICIT) == ProcessGroup("none")


@pytest.mark.parametrize("environ, message", [
    ({"PROSOCIAL_JAX_COORDINATOR": "h:1"}, r"number of processes: set "
                                           r"initialize_from_environment.num_processes or "
                                           r"\$PROSOCIAL_JAX_NUM_PROCESSES"),
    ({"PROSOCIAL_JAX_NUM_PROCESSES": "2"}, r"needs initialize_from_environment.coordinator_address "
                                           r"\(or \$PROSOCIAL_JAX_COORDINATOR\) and "
                                           r"initialize_from_environment.process_id"),
    ({**EXPLICIT, "PROSOCIAL_JAX_PROCESS_ID": "4"}, r"Process id 4 is outside 0..3"),
    ({**EXPLICIT, "PROSOCIAL_JAX_NUM_PROCESSES": "four"},
     r"\$PROSOCIAL_JAX_NUM_PROCESSES must be an integer, got 'four'"),
])
def test_incomplete_explicit_settings_say_what_is_missing(environ, message):
  with pytest.raises(ValueError, match=message):
    detect_process_group(environ=environ)


def test_slurm_only_inside_a_step_of_several_tasks():
  assert detect_process_group(environ=SLURM_STEP).cluster == "slurm"
  assert detect_process_group(environ={**SLURM_STEP, "SLURM_NTASKS": "1"}).cluster == "none"
  batch_script = {k: v for k, v in SLURM_STEP.items() if k != "SLURM_STEP_NODELIST"}
  assert detect_process_group(environ=batch_script).cluster == "none"


def test_tpu_from_its_environment_or_its_chips(monkeypatch):
  assert detect_process_group(environ={"TPU_WORKER_HOSTNAMES": "t0,t1"}).cluster == "tpu"
  assert detect_process_group(environ={"MEGASCALE_COORDINATOR_ADDRESS": "t0"}).cluster == "tpu"
  monkeypatch.setattr(distributed, "on_cloud_tpu_vm", lambda: True)
  assert detect_process_group(environ={}) == ProcessGroup("tpu")


def test_the_cluster_can_be_forced():
  assert detect_process_group(cluster="none", environ=EXPLICIT).cluster == "none"
  assert detect_process_group(cluster="tpu", environ={}).cluster == "tpu"
  assert detect_process_group(cluster="slurm", environ=SLURM_STEP).cluster == "slurm"
  with pytest.raises(ValueError, match=r"inside an srun step .* missing: \$SLURM_JOB_ID"):
    detect_process_group(cluster="slurm", environ={})
  with pytest.raises(ValueError, match="cluster must be one of"):
    detect_process_group(cluster="k8s", environ={})


@pytest.fixture
def joins(monkeypatch):
  """Records jax.distributed.initialize and the config updates instead of running them."""
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(("join", kw)))
  monkeypatch.setattr(jax.config, "update", lambda name, value: calls.append((name, value)))
  return calls


def test_initialize_joins_with_gloo_and_a_generous_timeout(joins, monkeypatch):
  for name, value in EXPLICIT.items():
    monkeypatch.setenv(name, value)
  assert distributed.initialize_from_environment().cluster == "explicit"
  assert joins == [("jax_cpu_collectives_implementation", "gloo"),
                   ("join", dict(coordinator_address="10.0.0.1:1234", num_processes=4,
                                 process_id=2, local_device_ids=None,
                                 cluster_detection_method="deactivate",
                                 initialization_timeout=900))]


# One task per GPU: 2 nodes x 8 tasks; this is task 11, the 4th on the second node.
PER_GPU = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_NTASKS": "16",
           "SLURM_PROCID": "11", "SLURM_LOCALID": "3", "SLURM_NODEID": "1",
           "SLURM_STEP_TASKS_PER_NODE": "8(x2)", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
# One task per node: 4 nodes, each process drives all of its node's GPUs.
PER_NODE = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "a100-[3,5-7]", "SLURM_NTASKS": "4",
            "SLURM_PROCID": "2", "SLURM_LOCALID": "0", "SLURM_NODEID": "2",
            "SLURM_STEP_TASKS_PER_NODE": "1(x4)", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
PORT = 4242 % 4096 + 61440  # JAX's rule: every task derives the same port from the job id


@pytest.mark.parametrize("environ, expected", [
    (PER_GPU, ProcessGroup("slurm", f"gpu07:{PORT}", 16, 11, (3,))),
    (PER_NODE, ProcessGroup("slurm", f"a100-3:{PORT}", 4, 2, None)),
    # SLURM bound one GPU to each task (--gpus-per-task=1): it is device 0 of the task.
    ({**PER_GPU, "CUDA_VISIBLE_DEVICES": "3"}, ProcessGroup("slurm", f"gpu07:{PORT}", 16, 11, None)),
    # Uneven steps ('2,1'): node 1 runs one task, which takes the node's GPUs.
    ({**PER_NODE, "SLURM_STEP_TASKS_PER_NODE": "2,1,1", "SLURM_NTASKS": "4", "SLURM_NODEID": "1"},
     ProcessGroup("slurm", f"a100-3:{PORT}", 4, 2, None)),
    ({**PER_GPU, "JAX_COORDINATOR_PORT": "1234", "SLURM_STEP_NODELIST": "n1,n2"},
     ProcessGroup("slurm", "n1:1234", 16, 11, (3,))),
])
def test_slurm_variables_map_to_jax_distributed_arguments(environ, expected):
  assert detect_process_group(environ=environ) == expected


def test_the_first_host_of_a_slurm_node_list():
  assert distributed._first_host("node001") == "node001"
  assert distributed._first_host("node[001-015],host2") == "node001"
  assert distributed._first_host("rack[2,4]-gpu[10-11]") == "rack2-gpu10"
  assert distributed._tasks_per_node("8(x2),4") == [8, 8, 4]


def test_initialize_passes_slurm_settings_complete(joins, monkeypatch):
  for name, value in PER_GPU.items():
    monkeypatch.setenv(name, value)
  distributed.initialize_from_environment(initialization_timeout=60)
  # JAX's own SLURM detection stays off: it would pin every task, also one per node,
  # to the single GPU SLURM_LOCALID names.
  assert joins[-1] == ("join", dict(coordinator_address=f"gpu07:{PORT}", num_processes=16,
                                    process_id=11, local_device_ids=[3],
                                    cluster_detection_method="deactivate",
                                    initialization_timeout=60))
  joins.clear()
  for name, value in PER_NODE.items():
    monkeypatch.setenv(name, value)
  distributed.initialize_from_environment()
  assert joins[-1][1]["local_device_ids"] is None  # all of the node's GPUs
  assert joins[-1][1]["cluster_detection_method"] == "deactivate"


def test_a_single_process_joins_nothing(joins, monkeypatch):
  for name in [*EXPLICIT, *SLURM_STEP, *PER_GPU]:
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize_from_environment() == ProcessGroup("none")
  assert joins == []
