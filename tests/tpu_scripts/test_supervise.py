"""supervise.py: a preempted slice is recreated and the same command relaunched with
the same MODEL_DIR, whose newest checkpoint the trainer resumes from; the number of
restarts is bounded."""

import re
from pathlib import Path

import pytest

from tpu_scripts import supervise
from tpu_scripts.gcloud import UserError

TRAIN = ["--gin_file=gin/canary/t5_large.gin", "--gin.MODEL_DIR='gs://bucket/canary'",
         "--gin_bindings=train.note = 'a b'"]
ARGS = ["--tpu=pod", "--project=proj", "--zone=us-central2-b", "--accelerator_type=v4-16",
        "--mode=spot", "--skip_setup", "--poll_s=0.1", "--wait_poll_s=0.05", "--job=canary"]
CHECKPOINTS = {"gs://bucket/canary": ["gs://bucket/canary/checkpoint_100/",
                                      "gs://bucket/canary/checkpoint_1200/",
                                      "gs://bucket/canary/checkpoint_1300.orbax-checkpoint-tmp-7/",
                                      "gs://bucket/canary/config.gin"]}


def _verbs(fake_cloud):
  return [" ".join(call[:5]) for call in fake_cloud.calls()]


def test_a_preempted_slice_is_recreated_and_the_job_relaunched(fake_cloud, capsys):
  fake_cloud.install(hosts=2)
  fake_cloud.set(qr="ACTIVE", vm="READY")
  fake_cloud.configure(storage=CHECKPOINTS)
  # First run: the slice is preempted under the job. Second run: it ends well.
  fake_cloud.behave([{"0": {"sleep": 60}, "1": {"sleep": 0.15, "exit": 1, "preempt": True}},
                     {"0": {"sleep": 0.1}, "1": {"sleep": 0.1}}])
  # The preempted hosts keep their folders here, so the recreated "slice" has the
  # same hosts: that is what --skip_setup says (an image or startup script installs).
  assert supervise.main([*ARGS, "--", *TRAIN]) == 0
  for worker in (0, 1):
    first, second = fake_cloud.runs(worker)
    assert first["argv"] == second["argv"] == ["-m", "prosocial_jax.train", *TRAIN]
  verbs = _verbs(fake_cloud)
  delete = verbs.index("compute tpus queued-resources delete pod")
  create = verbs.index("compute tpus queued-resources create pod")
  assert delete < create
  assert "--spot" in fake_cloud.calls()[create]
  out = capsys.readouterr().out
  assert "newest checkpoint checkpoint_1200; the trainer resumes from it" in out
  assert "restart 1 of 5" in out


def test_restarts_are_bounded(fake_cloud):
  fake_cloud.install(hosts=2)
  fake_cloud.set(qr="ACTIVE", vm="READY")
  preempted = {"0": {"sleep": 0.1, "exit": 1, "preempt": True}, "1": {"sleep": 0.1, "exit": 1}}
  fake_cloud.behave([preempted] * 5)
  with pytest.raises(UserError, match=r"Gave up after 1 restart\(s\)"):
    supervise.main([*ARGS, "--max_restarts=1", "--", *TRAIN])
  assert len(fake_cloud.runs(0)) == 2  # the first launch and one restart
  assert _verbs(fake_cloud).count("compute tpus queued-resources create pod") == 1


def test_a_failure_on_a_healthy_slice_is_not_retried_by_default(fake_cloud):
  fake_cloud.install(hosts=2)
  fake_cloud.set(qr="ACTIVE", vm="READY")
  fake_cloud.behave([{"0": {"sleep": 0.1, "exit": 2}, "1": {"sleep": 0.1}}] * 3)
  assert supervise.main([*ARGS, "--", *TRAIN]) == 1
  assert len(fake_cloud.runs(0)) == 1
  with pytest.raises(UserError, match=r"Gave up after 1 restart\(s\)"):
    supervise.main([*ARGS, "--restart_on_failure", "--max_restarts=1", "--job=again", "--",
                    *TRAIN])
  assert len(fake_cloud.runs(0)) == 3  # relaunched once on the same slice
  assert "compute tpus queued-resources create pod" not in _verbs(fake_cloud)


def test_the_checkpoint_folders_are_named_as_the_trainer_names_them():
  # Read from the source: importing the manager would pull in orbax and JAX.
  source = (Path(__file__).resolve().parents[2] / "prosocial_jax/checkpoints/manager.py").read_text()
  assert re.search(r'^STEP_PREFIX = "(\w+)"', source, re.M).group(1) == supervise.STEP_PREFIX
