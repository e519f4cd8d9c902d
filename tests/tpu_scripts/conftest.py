"""A fake Cloud project for the tpu_scripts tests: `gcloud` on PATH is fake_gcloud.py,
whose TPU hosts are folders here, with a fake project Python that records how it
was called. Nothing reaches the network or a real accelerator; `sudo` on the fake
hosts only records what it was asked."""

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tpu_scripts is not installed: it runs from the clone
  sys.path.insert(0, str(ROOT))

FAKE_GCLOUD = Path(__file__).with_name("fake_gcloud.py")

# The project's Python on a fake host: records its arguments, environment and
# directory, then follows behaviour.json: a list (one entry per start on that host)
# of {worker: {"sleep": s, "exit": status, "preempt": true}}.
HOST_PYTHON = """#!{python} -S
import json, os, sys, time
from pathlib import Path
home, worker = Path(os.environ["HOME"]), os.environ["PROSOCIAL_JAX_WORKER"]
state = Path(os.environ["FAKE_GCLOUD_STATE"])
counter = home / "runs"
run = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(run + 1))
(home / f"run_{{run}}.json").write_text(json.dumps(dict(
    argv=sys.argv[1:], cwd=os.getcwd(), pid=os.getpid(),
    env={{k: os.environ.get(k) for k in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONUNBUFFERED", "MY_TOKEN")}})))
path = state / "behaviour.json"
plan = json.loads(path.read_text()) if path.exists() else []
todo = (plan[run] if run < len(plan) else {{}}).get(worker, {{}})
print(f"worker {{worker}} run {{run}}: step 1 loss 2.5", flush=True)
time.sleep(todo.get("sleep", 0.1))
if todo.get("preempt"):  # the slice goes away: no host answers any more
  (state / "vm").write_text("PREEMPTED")
  (state / "qr").write_text("SUSPENDED")
  config = json.loads((state / "config.json").read_text())
  config["down_workers"] = list(range(config["hosts"]))
  (state / "config.json").write_text(json.dumps(config))
print(f"worker {{worker}} run {{run}}: " + todo.get("say", "done"), flush=True)
sys.exit(todo.get("exit", 0))
"""


def gone(pid: int, wait_s: float = 3.0) -> bool:
  """The process has ended (a zombie not yet reaped by init counts as ended)."""
  deadline = time.monotonic() + wait_s
  while True:
    try:
      state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
      return True
    if state in ("Z", "X"):
      return True
    if time.monotonic() > deadline:
      return False
    time.sleep(0.05)


def _executable(path: Path, text: str) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
  return path


class FakeCloud:
  def __init__(self, state: Path):
    self.state = state

  def configure(self, **settings) -> None:
    path = self.state / "config.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**current, **settings}))

  def set(self, qr=None, vm=None) -> None:
    for name, value in (("qr", qr), ("vm", vm)):
      if value is None:
        (self.state / name).unlink(missing_ok=True)
      else:
        (self.state / name).write_text(value)

  def behave(self, plan) -> None:
    (self.state / "behaviour.json").write_text(json.dumps(plan))

  def home(self, worker: int) -> Path:
    return self.state / "hosts" / f"w{worker}"

  def install(self, hosts: int, remote_dir: str = "prosocial_jax") -> None:
    """What setup_hosts.py leaves on each host: code/ and the venv's Python."""
    for worker in range(hosts):
      root = self.home(worker) / remote_dir
      (root / "code").mkdir(parents=True, exist_ok=True)
      _executable(root / ".venv" / "bin" / "python", HOST_PYTHON.format(python=sys.executable))

  def runs(self, worker: int) -> list[dict]:
    return [json.loads(p.read_text())
            for p in sorted(self.home(worker).glob("run_*.json"),
                            key=lambda p: int(p.stem.split("_")[1]))]

  def calls(self) -> list[list[str]]:
    path = self.state / "calls.jsonl"
    if not path.exists():
      return []
    return [json.loads(line)["argv"] for line in path.read_text().splitlines()]

  def ssh_calls(self) -> list[list[str]]:
    return [c for c in self.calls() if c[:4] == ["compute", "tpus", "tpu-vm", "ssh"]]

  gone = staticmethod(gone)

  def sudo_log(self) -> list[str]:
    path = self.state / "sudo.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fake_cloud(tmp_path, monkeypatch):
  state = tmp_path / "cloud"
  state.mkdir()
  bin_dir = tmp_path / "bin"
  _executable(bin_dir / "gcloud", f'#!/bin/sh\nexec {sys.executable} -S {FAKE_GCLOUD} "$@"\n')
  # On the fake hosts: sudo records (and runs nothing unless FAKE_SUDO_EXEC=1), the
  # metadata server is unreachable (the worker number comes from the environment).
  _executable(state / "hostbin" / "sudo", '#!/bin/sh\necho "$*" >> "$FAKE_GCLOUD_STATE/sudo.log"\n'
              '[ "$1" = -n ] && shift\n[ "${FAKE_SUDO_EXEC:-0}" = 1 ] && exec "$@"\nexit 0\n')
  _executable(state / "hostbin" / "curl", "#!/bin/sh\nexit 7\n")
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  monkeypatch.setenv("FAKE_GCLOUD_STATE", str(state))
  for name in ("CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_COMPUTE_ZONE"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.chdir(tmp_path)
  cloud = FakeCloud(state)
  cloud.configure(project="proj", zone="us-central2-b", hosts=2, accelerator_type="v4-16")
  return cloud


@pytest.fixture
def no_gcloud(tmp_path, monkeypatch):
  """A PATH without gcloud (the dry runs must not need it; nothing may reach a real one)."""
  bin_dir = tmp_path / "bin_without_gcloud"
  bin_dir.mkdir()
  for tool in ("git", "sh", "bash"):
    found = shutil.which(tool)
    if found:
      (bin_dir / tool).symlink_to(found)
  monkeypatch.setenv("PATH", str(bin_dir))
  for name in ("CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_COMPUTE_ZONE"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.chdir(tmp_path)
