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
  assert detect_process_group(environ=SLURM_STEP) == ProcessGroup("slurm")
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
  assert detect_process_group(cluster="slurm", environ={}).cluster == "slurm"
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
                                 process_id=2, cluster_detection_method=None,
                                 initialization_timeout=900))]


def test_initialize_leaves_slurm_details_to_jax(joins, monkeypatch):
  for name, value in SLURM_STEP.items():
    monkeypatch.setenv(name, value)
  distributed.initialize_from_environment(initialization_timeout=60)
  assert joins[-1] == ("join", dict(coordinator_address=None, num_processes=None,
                                    process_id=None, cluster_detection_method="slurm",
                                    initialization_timeout=60))


def test_a_single_process_joins_nothing(joins, monkeypatch):
  for name in [*EXPLICIT, *SLURM_STEP]:
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize_from_environment() == ProcessGroup("none")
  assert joins == []
