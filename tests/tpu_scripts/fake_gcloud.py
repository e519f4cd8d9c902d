"""A stand-in for `gcloud` (tests put it on PATH): records every call and plays a TPU
slice whose hosts are folders on this machine.

State folder: $FAKE_GCLOUD_STATE
  calls.jsonl        one {"argv": [...]} per call, in order
  config.json        {"hosts": 2, "accelerator_type": "v4-16", "execute": true,
                      "down_workers": [], "ssh_stdout": {substring: text or [text per worker]},
                      "storage": {url: [lines]}, "project": ..., "zone": ...}
  qr                 the queued resource's state (absent file: no request)
  vm                 the TPU VM's state (READY, PREEMPTED, ...; absent: no VM)
  hosts/w<i>/        worker i's home directory
`tpu-vm ssh --command=CMD` runs `bash -c CMD` in each addressed worker's home (HOME
set there, $PROSOCIAL_JAX_WORKER=i, $FAKE_GCLOUD_STATE/hostbin first on PATH) unless
"execute" is false, then prints the ssh_stdout entries whose key CMD contains.
Creating a queued resource makes it PROVISIONING, then ACTIVE at the next describe,
with a READY VM; deleting removes both.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_GCLOUD_STATE"])


def config() -> dict:
  path = STATE / "config.json"
  return json.loads(path.read_text()) if path.exists() else {}


def read(name: str):
  path = STATE / name
  return path.read_text().strip() if path.exists() else None


def write(name: str, value) -> None:
  path = STATE / name
  if value is None:
    path.unlink(missing_ok=True)
  else:
    path.write_text(value)


def flag(argv, name):
  for arg in argv:
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
  if f"--{name}" in argv:
    at = argv.index(f"--{name}")
    return argv[at + 1] if at + 1 < len(argv) else ""
  return None


def workers(argv, cfg):
  worker = flag(argv, "worker") or "0"
  return list(range(cfg.get("hosts", 1))) if worker == "all" else [int(worker)]


def home(i: int) -> Path:
  path = STATE / "hosts" / f"w{i}"
  path.mkdir(parents=True, exist_ok=True)
  return path


def not_found(what: str) -> int:
  print(f"ERROR: (gcloud.compute.tpus) NOT_FOUND: {what} was not found", file=sys.stderr)
  return 1


def ssh(argv, cfg) -> int:
  command = flag(argv, "command")
  status = 0
  for i in workers(argv, cfg):
    if i in cfg.get("down_workers", []):
      print(f"ssh: connect to host 10.0.0.{i} port 22: Connection timed out", file=sys.stderr)
      status = 255
      continue
    if not cfg.get("execute", True):
      for key, text in cfg.get("ssh_stdout", {}).items():
        if key in command:  # one text for every worker, or a list: one per worker
          print(text[i] if isinstance(text, list) else text, flush=True)
      continue
    env = {**os.environ, "HOME": str(home(i)), "PROSOCIAL_JAX_WORKER": str(i),
           "PATH": f"{STATE / 'hostbin'}:{os.environ['PATH']}"}
    # Like sshd hanging up the session when gcloud is stopped: the command's whole
    # process group goes with this process.
    child = subprocess.Popen(["bash", "-c", command], env=env, cwd=home(i),
                             start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: (_hang_up(child), sys.exit(143)))
    status = status or child.wait()
  return status


def _hang_up(child) -> None:
  try:
    os.killpg(child.pid, signal.SIGHUP)
  except ProcessLookupError:
    pass


def scp(argv, cfg) -> int:
  positional = [a for a in argv[argv.index("scp") + 1:] if not a.startswith("--")]
  source, destination = positional[0], positional[1]
  tpu = positional[0].split(":")[0] if ":" in positional[0] else positional[1].split(":")[0]
  for i in workers(argv, cfg):
    if i in cfg.get("down_workers", []):
      print(f"ssh: connect to host 10.0.0.{i} port 22: Connection timed out", file=sys.stderr)
      return 255
    if source.startswith(f"{tpu}:"):
      matches = glob.glob(str(home(i) / source.split(":", 1)[1]))
      if not matches:
        print(f"scp: {source}: No such file or directory", file=sys.stderr)
        return 1
      for match in matches:
        shutil.copy(match, destination)
    else:  # to the hosts: an absolute remote path is kept under the host's home
      target = home(i) / destination.split(":", 1)[1].lstrip("/")
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy(source, target)
  return 0


def queued_resources(verb, argv) -> int:
  state = read("qr")
  if verb == "describe":
    if state is None:
      return not_found("queued resource")
    if state == "PROVISIONING":
      write("qr", "ACTIVE")
      write("vm", "READY")
    record = {"state": {"state": state}}
    if state == "FAILED":
      record["state"]["failedData"] = {"error": {"message": "There is no more capacity in the zone"}}
    print(json.dumps(record))
    return 0
  if verb == "create":
    if state is not None:
      print("ERROR: ALREADY_EXISTS", file=sys.stderr)
      return 1
    write("qr", "PROVISIONING")
    return 0
  if verb == "delete":
    if state is None:
      return not_found("queued resource")
    write("qr", None)
    write("vm", None)
    cfg = config()
    cfg["down_workers"] = []  # a new slice's hosts answer again
    (STATE / "config.json").write_text(json.dumps(cfg))
    return 0
  return 2


def main(argv) -> int:
  with open(STATE / "calls.jsonl", "a") as calls:
    calls.write(json.dumps({"argv": argv}) + "\n")
  cfg = config()
  words = [a for a in argv if not a.startswith("-")]
  if words[:2] == ["config", "get-value"]:
    value = cfg.get({"project": "project", "compute/zone": "zone"}[words[2]])
    print(value or "(unset)")
    return 0
  if words and words[0] == "alpha":
    words = words[1:]
  if words[:3] == ["compute", "tpus", "queued-resources"]:
    return queued_resources(words[3], argv)
  if words[:3] == ["compute", "tpus", "tpu-vm"]:
    verb = words[3]
    if verb == "ssh":
      return ssh(argv, cfg)
    if verb == "scp":
      return scp(argv, cfg)
    if verb == "describe":
      state = read("vm")
      if state is None:
        return not_found("TPU VM")
      print(json.dumps({"state": state, "acceleratorType": cfg.get("accelerator_type", "v4-8"),
                        "networkEndpoints": [{} for _ in range(cfg.get("hosts", 1))]}))
      return 0
    if verb == "delete":
      write("vm", None)
      return 0
  if words[:2] == ["storage", "ls"]:
    lines = cfg.get("storage", {}).get(words[2].rstrip("/"), None)
    if lines is None:
      print("ERROR: (gcloud.storage.ls) One or more URLs matched no objects.", file=sys.stderr)
      return 1
    print("\n".join(lines))
    return 0
  print(f"fake gcloud: unsupported {argv}", file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
