"""launch.py / watch.py against the fake slice: the chips are freed before the start,
every host runs the same command with the gin flags intact, a failure on one host
stops all, and the logs come back one file per host."""

import os
import shlex
import signal

import pytest

from tpu_scripts import launch, remote, watch
from tpu_scripts.gcloud import UserError

TPU = ["--tpu=pod", "--project=proj", "--zone=us-central2-b"]
# Gin strings with spaces, quotes of both kinds, $, backticks and a glob: the shell on
# the hosts must not touch any of them.
NASTY = ["--gin_file=gin/canary/t5_large.gin",
         "--gin.MODEL_DIR='gs://bucket/run one'",
         "--gin.MIXTURE_OR_TASK_NAME=\"canary_mixture\"",
         "--gin_bindings=train.note = 'it''s $HOME `date` * ;|&'",
         "--gin.TASK_FEATURE_LENGTHS={'inputs': 256, 'targets': 64}"]
FAST = ["--poll_s=0.1", "--accelerator_type=v4-16"]


def _command_of(call):
  return next(a.split("=", 1)[1] for a in call if a.startswith("--command="))


def _worker_of(call):
  return next(a.split("=", 1)[1] for a in call if a.startswith("--worker="))


def test_every_host_runs_the_same_command_after_the_chips_are_freed(fake_cloud, capfd):
  fake_cloud.install(hosts=2)
  status = launch.main([*TPU, *FAST, "--job=j1", "--env=MY_TOKEN=s3 cr3t", "--", *NASTY])
  assert status == 0
  for worker in (0, 1):
    (run,) = fake_cloud.runs(worker)
    assert run["argv"] == ["-m", "prosocial_jax.train", *NASTY]  # intact, byte for byte
    assert run["cwd"].endswith(f"w{worker}/prosocial_jax/code")
    assert run["env"] == {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                          "MY_TOKEN": "s3 cr3t"}
  ssh_calls = fake_cloud.ssh_calls()
  commands = [_command_of(c) for c in ssh_calls]
  free = next(i for i, c in enumerate(commands) if "libtpu_lockfile" in c)
  start = next(i for i, c in enumerate(commands) if "prosocial_jax.train" in c)
  assert free < start
  # The chips: holders of /dev/accel* and /dev/vfio/* ended, libtpu's lock removed.
  assert "/dev/accel* /dev/vfio/[0-9]*" in shlex.split(commands[free])[2]
  assert any(line.startswith("-n rm -f /tmp/libtpu_lockfile") for line in fake_cloud.sudo_log())
  # Every command runs on every host; only the console's stream reads worker 0 alone.
  for call, command in zip(ssh_calls, commands):
    expected = "0" if "tail" in command and "-F" in command else "all"
    assert _worker_of(call) == expected, command
  # One log per host, fetched here; the secret went on no file on the hosts.
  logs = sorted(p.name for p in (fake_cloud.state.parent / "runs/tpu_logs/pod/j1").iterdir())
  assert logs == ["worker_0.log", "worker_1.log"]
  job_files = [p for w in (0, 1) for p in (fake_cloud.home(w) / "prosocial_jax/jobs/j1").iterdir()]
  assert not any("s3 cr3t" in p.read_text() for p in job_files if p.is_file())
  out = capfd.readouterr()
  assert "worker 0 run 0: done" in out.out       # worker 0 streamed to the console
  assert "worker 1 run 0" not in out.out
  assert "ended well on all 2 host(s)" in out.out
  assert "s3 cr3t" not in out.out + out.err and "MY_TOKEN=..." in out.out  # not echoed either


def test_a_failure_on_one_host_stops_them_all(fake_cloud, capfd):
  fake_cloud.install(hosts=2)
  fake_cloud.set(vm="READY")
  fake_cloud.behave([{"0": {"sleep": 60}, "1": {"sleep": 0.1, "exit": 7, "say": "boom"}}])
  status = launch.main([*TPU, *FAST, "--job=j2", "--", "--gin_file=x.gin",
                        "--gin.MODEL_DIR='gs://b/r'"])
  assert status == 1
  (run0,) = fake_cloud.runs(0)
  assert fake_cloud.gone(run0["pid"])  # worker 0's process was stopped
  jobs = fake_cloud.home(0) / "prosocial_jax/jobs/j2"
  assert (jobs / "stopped_0").exists() and not (jobs / "exit_code_0").exists()
  assert (fake_cloud.home(1) / "prosocial_jax/jobs/j2/exit_code_1").read_text().strip() == "7"
  err = capfd.readouterr().err
  assert "worker 1 exited with status 7" in err and "stopped on every host" in err
  assert "worker 1 run 0: boom" in err            # the end of the failing host's log


def test_a_host_that_cannot_start_stops_the_job_everywhere(fake_cloud):
  fake_cloud.install(hosts=1)  # worker 1 has no code/: setup never ran there
  fake_cloud.behave([{"0": {"sleep": 60}}])
  with pytest.raises(UserError, match=r"(?s)started on 1 of 2 host\(s\).*run setup_hosts.py"):
    launch.main([*TPU, *FAST, "--job=j3", "--", "--gin.MODEL_DIR='gs://b/r'"])
  job = fake_cloud.home(0) / "prosocial_jax/jobs/j3"
  assert fake_cloud.gone(int((job / "pid_0").read_text()))  # worker 0's job: stopped
  assert (job / "stopped_0").exists()
  assert "stop job j3" in _command_of(fake_cloud.ssh_calls()[-1])


def test_an_unreachable_slice_counts_as_down(fake_cloud):
  fake_cloud.install(hosts=2)
  fake_cloud.set(vm="READY")
  fake_cloud.behave([{"0": {"sleep": 0.1, "preempt": True}, "1": {"sleep": 60}}])
  outcome = launch.launch(*_launch_args(fake_cloud, "j4"), ["--gin.MODEL_DIR='gs://b/r'"])
  assert outcome.kind == "slice_down" and outcome.exit_status == 3
  assert "PREEMPTED" in outcome.message
  os.kill(fake_cloud.runs(1)[0]["pid"], signal.SIGTERM)  # the fake host 1's job lives on here


def _launch_args(fake_cloud, job):
  from tpu_scripts import gcloud
  args = launch.build_parser().parse_args([*TPU, *FAST, f"--job={job}"])
  target = gcloud.resolve_target(args)
  return gcloud.Runner(), target, gcloud.slice_shape("v4-16"), args


@pytest.mark.parametrize("model_dir", ["--gin.MODEL_DIR='runs/local'", "--model_dir=/tmp/run"])
def test_a_pod_needs_its_model_dir_on_gcs(fake_cloud, model_dir):
  with pytest.raises(UserError, match="not on GCS: the 2 hosts of v4-16 share no disk"):
    launch.main([*TPU, *FAST, "--", model_dir])
  assert fake_cloud.ssh_calls() == []  # refused before anything ran


def test_model_dir_is_read_from_every_spelling():
  assert launch.model_dir_of(["--gin.MODEL_DIR='gs://a/b'"]) == "gs://a/b"
  assert launch.model_dir_of(["--gin_bindings=MODEL_DIR = \"gs://a/c\""]) == "gs://a/c"
  assert launch.model_dir_of(["--model_dir", "gs://a/d"]) == "gs://a/d"
  assert launch.model_dir_of(["--gin_file=x.gin"]) is None


def test_status_lines_are_parsed():
  text = "noise\nPROSOCIAL_JAX_STATUS worker=1 job=j state=exited code=0\n"
  assert remote.parse_lines(text, "STATUS") == [dict(worker="1", job="j", state="exited", code="0")]
  assert watch.Outcome("failed").exit_status == 1
