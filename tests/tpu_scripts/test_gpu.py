"""gpu_launch.py with a stand-in Python, and the SLURM template with a stand-in srun."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from prosocial_jax.partitioning.distributed import ProcessGroup, detect_process_group
from tpu_scripts import gpu_launch

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "tpu_scripts" / "slurm" / "train.sbatch"
TRAIN = ["--gin_file=gin/prost/rot_response.gin", "--gin.MODEL_DIR='/shared/runs/prost one'"]

# Records its environment and arguments; process 1 fails when FAIL_PROCESS=1.
FAKE_PYTHON = f"""#!{sys.executable} -S
import json, os, sys, time
i = os.environ.get("PROSOCIAL_JAX_PROCESS_ID", "0")
keys = [k for k in os.environ if k.startswith(("PROSOCIAL_JAX", "JAX_", "TF_CPP", "TF_FORCE"))]
with open(os.path.join(os.environ["RECORD_DIR"], f"p{{i}}.json"), "w") as f:
  json.dump(dict(argv=sys.argv[1:], pid=os.getpid(), env={{k: os.environ[k] for k in keys}}), f)
print(f"process {{i}} step 1", flush=True)
if os.environ.get("FAIL_PROCESS") == i:
  print(f"process {{i}} fails", flush=True)
  sys.exit(3)
time.sleep(float(os.environ.get("SLEEP", "0.1")))
"""


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
  path = tmp_path / "python"
  path.write_text(FAKE_PYTHON)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)
  monkeypatch.setenv("RECORD_DIR", str(tmp_path))
  return path


def _records(tmp_path, n):
  return [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(n)]


def test_one_process_per_gpu_each_on_its_own_gpu(tmp_path, fake_python, capfd):
  status = gpu_launch.main(["--processes=per_gpu", "--gpus=3", "--port=23456",
                            f"--python={fake_python}", f"--log_dir={tmp_path}/logs", "--", *TRAIN])
  assert status == 0
  for i, record in enumerate(_records(tmp_path, 3)):
    assert record["argv"] == ["-m", "prosocial_jax.train", *TRAIN]
    assert record["env"] == {"PROSOCIAL_JAX_COORDINATOR": "127.0.0.1:23456",
                             "PROSOCIAL_JAX_NUM_PROCESSES": "3", "PROSOCIAL_JAX_PROCESS_ID": str(i),
                             "JAX_LOCAL_DEVICE_IDS": str(i), "TF_CPP_MIN_LOG_LEVEL": "2",
                             "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    assert f"process {i} step 1" in (tmp_path / f"logs/process_{i}.log").read_text()
  out = capfd.readouterr().out
  assert "process 0 step 1" in out and "process 1 step 1" not in out  # process 0 echoed


def test_a_failed_process_stops_the_others(tmp_path, fake_python, monkeypatch, capfd):
  monkeypatch.setenv("FAIL_PROCESS", "1")
  monkeypatch.setenv("SLEEP", "60")
  status = gpu_launch.main(["--processes=per_gpu", "--gpus=3", f"--python={fake_python}",
                            f"--log_dir={tmp_path}/logs", "--grace_s=5", "--", *TRAIN])
  assert status == 3
  for record in _records(tmp_path, 3):
    with pytest.raises(ProcessLookupError):
      os.kill(record["pid"], 0)
  assert "process 1 failed with status 3" in capfd.readouterr().err


def test_one_process_drives_every_gpu_without_a_coordinator(tmp_path, fake_python):
  assert gpu_launch.main([f"--python={fake_python}", f"--log_dir={tmp_path}/logs", "--",
                          *TRAIN]) == 0
  (record,) = _records(tmp_path, 1)
  assert not any(k.startswith("PROSOCIAL_JAX") or k == "JAX_LOCAL_DEVICE_IDS"
                 for k in record["env"])


def _sbatch(tmp_path, args, **env):
  """Runs the template as sbatch would (bash, SLURM's variables set) with srun faked."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  srun = bin_dir / "srun"
  srun.write_text(f"#!{sys.executable} -S\nimport json, os, sys\n"
                  f"json.dump(dict(argv=sys.argv[1:], env=dict(os.environ)), "
                  f"open({str(tmp_path / 'srun.json')!r}, 'w'))\n")
  srun.chmod(0o755)
  python = tmp_path / "py"
  python.write_text("#!/bin/sh\n")
  python.chmod(0o755)
  environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "4242",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS": "16",
             "PROSOCIAL_JAX_PYTHON": str(python), "PROSOCIAL_JAX_LOG_DIR": str(tmp_path / "logs"),
             **env}
  return subprocess.run(["bash", str(SBATCH), *args], cwd=tmp_path, env=environ,
                        capture_output=True, text=True, timeout=30, check=False), python


def test_the_slurm_template_starts_every_task_with_its_own_log(tmp_path):
  result, python = _sbatch(tmp_path, TRAIN)
  assert result.returncode == 0, result.stderr
  record = json.loads((tmp_path / "srun.json").read_text())
  assert record["argv"] == ["--kill-on-bad-exit=1", f"--output={tmp_path}/logs/process_%t.log",
                            "--open-mode=append", str(python), "-m", "prosocial_jax.train", *TRAIN]
  assert record["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
  assert record["env"]["TF_CPP_MIN_LOG_LEVEL"] == "2"
  assert (tmp_path / "logs").is_dir()
  missing, _ = _sbatch(tmp_path, [])
  assert missing.returncode == 2 and "usage: sbatch" in missing.stderr


def test_the_tasks_of_an_srun_step_form_one_job():
  """2 nodes x 8 tasks: ids 0..15, one coordinator, each task on its node's GPU LOCALID."""
  groups = []
  for task in range(16):
    node, local = divmod(task, 8)
    groups.append(detect_process_group(environ={
        "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "h100-[03-04]", "SLURM_NTASKS": "16",
        "SLURM_PROCID": str(task), "SLURM_LOCALID": str(local), "SLURM_NODEID": str(node),
        "SLURM_STEP_TASKS_PER_NODE": "8(x2)", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}))
  assert {g.coordinator_address for g in groups} == {f"h100-03:{4242 % 4096 + 61440}"}
  assert [g.process_id for g in groups] == list(range(16))
  assert [g.local_device_ids for g in groups] == [(i % 8,) for i in range(16)]
  assert all(g.num_processes == 16 and g.cluster == "slurm" for g in groups)
  per_node = detect_process_group(environ={
      "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "h100-[03-04]", "SLURM_NTASKS": "2",
      "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
      "SLURM_STEP_TASKS_PER_NODE": "1(x2)"})
  assert per_node == ProcessGroup("slurm", f"h100-03:{4242 % 4096 + 61440}", 2, 1, None)
