"""create.py, teardown.py and setup_hosts.py against the fake project."""

import json

import pytest

from tpu_scripts import create, gcloud, setup_hosts, teardown
from tpu_scripts.gcloud import UserError

TPU = ["--tpu=pod", "--project=proj", "--zone=us-central2-b"]
CREATE = [*TPU, "--accelerator_type=v4-16", "--mode=spot", "--wait_poll_s=0.01"]


def _verbs(fake_cloud):
  return [" ".join(call[:5]) for call in fake_cloud.calls()]


def test_create_waits_until_active_and_is_idempotent(fake_cloud, capsys):
  assert create.main(CREATE) == 0
  assert "pod: ACTIVE" in capsys.readouterr().out
  assert create.main(CREATE) == 0  # already ACTIVE: nothing new is requested
  assert _verbs(fake_cloud).count("compute tpus queued-resources create pod") == 1
  assert "already ACTIVE" in capsys.readouterr().out


def test_a_failed_request_is_reported_and_recreated_on_demand(fake_cloud):
  fake_cloud.set(qr="FAILED")
  with pytest.raises(UserError, match=r"(?s)is FAILED: There is no more capacity.*--recreate"):
    create.main(CREATE)
  assert create.main([*CREATE, "--recreate"]) == 0
  verbs = _verbs(fake_cloud)
  assert verbs.index("compute tpus queued-resources delete pod") < \
      verbs.index("compute tpus queued-resources create pod")


def test_a_request_suspended_while_waiting_is_an_error(fake_cloud, monkeypatch):
  states = iter([("WAITING_FOR_RESOURCES", ""), ("SUSPENDED", "preempted")])
  monkeypatch.setattr(gcloud, "queued_resource_state", lambda runner, target: next(states))
  with pytest.raises(UserError, match="is SUSPENDED: preempted"):
    create.wait_active(gcloud.Runner(), gcloud.Target("pod", "p", "z"), 60, 0.01)


def test_teardown_deletes_the_request_or_the_bare_vm(fake_cloud, capsys):
  fake_cloud.set(qr="ACTIVE", vm="READY")
  teardown.main(TPU)
  assert "compute tpus queued-resources delete pod" in _verbs(fake_cloud)
  fake_cloud.set(vm="READY")  # a TPU VM made without a queued resource
  teardown.main(TPU)
  assert _verbs(fake_cloud)[-1] == "compute tpus tpu-vm delete pod"
  teardown.main(TPU)
  assert "nothing named pod" in capsys.readouterr().out


def _report(worker, **changes):
  report = dict(worker=str(worker), process_index=worker, process_count=2, local_device_count=4,
                device_count=8, platform="tpu", device_kind="TPU v4", allgather=[0, 1],
                commit="c" * 40, versions={"jax": "0.10.2", "libtpu": "0.0.30", "flax": "0.12.8"})
  report.update(changes)
  return report


V4_16 = gcloud.slice_shape("v4-16")


def test_hosts_that_agree_pass_the_check():
  assert setup_hosts.check_reports([_report(0), _report(1)], V4_16, "c" * 40) == []


@pytest.mark.parametrize("reports, problem", [
    ([_report(0), _report(1, versions={"jax": "0.10.1", "libtpu": "0.0.30", "flax": "0.12.8"})],
     "jax differs between hosts: 0.10.1 on worker(s) 1; 0.10.2 on worker(s) 0"),
    ([_report(0), _report(1, versions={"jax": "0.10.2", "libtpu": "0.0.29", "flax": "0.12.8"})],
     "libtpu differs between hosts"),
    ([_report(0, process_count=1, allgather=[0]), _report(1, process_index=0, process_count=1,
                                                          allgather=[0])],
     "every host reports process 0 of 1: these 2 hosts are separate single-host VMs"),
    ([_report(0), _report(1, platform="cpu", local_device_count=1)],
     "worker(s) 1 (cpu) run JAX off the TPU"),
    ([_report(0)], "1 host(s) reported, the slice has 2"),
    ([_report(0), _report(1, commit="d" * 40)], "worker(s) 1 run another commit"),
])
def test_the_check_names_what_differs(reports, problem):
  assert any(problem in p for p in setup_hosts.check_reports(reports, V4_16, "c" * 40))


def test_setup_installs_the_commit_everywhere_then_checks(fake_cloud, capsys):
  sha = setup_hosts._git("rev-parse", "HEAD")
  reports = ["PROSOCIAL_JAX_HOST " + json.dumps(_report(w, commit=sha)) for w in (0, 1)]
  fake_cloud.configure(execute=False, ssh_stdout={"check the hosts": reports})
  assert setup_hosts.main([*TPU, "--accelerator_type=v4-16", "--jax_version=0.10.2",
                           "--allow_dirty", "--constraints=" + str(__file__)]) == 0
  calls = fake_cloud.calls()
  scps = [c for c in calls if c[3] == "scp"]
  assert len(scps) == 2 and all("--worker=all" in c for c in scps)  # code and constraints
  ssh = fake_cloud.ssh_calls()
  assert all("--worker=all" in c for c in ssh)
  install = next(a for a in ssh[0] if a.startswith("--command="))
  assert f"install {sha[:12]}" in install and "'jax[tpu]==0.10.2'" in install
  assert "venv --quiet --python 3.11" in install and "-c /tmp/prosocial_jax-constraints-" in install
  assert "All 2 host(s) agree." in capsys.readouterr().out
  # The code went to every host: the archive of exactly this commit.
  for worker in (0, 1):
    (archive,) = (fake_cloud.home(worker) / "tmp").glob("prosocial_jax-*.tar.gz")
    assert archive.name == f"prosocial_jax-{sha[:12]}.tar.gz"


def test_setup_refuses_a_dirty_tree_unless_told(monkeypatch):
  monkeypatch.setattr(setup_hosts, "_git", lambda *args: " M tpu_scripts/x.py"
                      if args[0] == "status" else "f" * 40)
  with pytest.raises(UserError, match="uncommitted changes.*--allow_dirty"):
    setup_hosts.resolve_commit("HEAD", allow_dirty=False)
  assert setup_hosts.resolve_commit("HEAD", allow_dirty=True) == "f" * 40
