"""What every tpu_scripts command shares: slice shapes, the target slice, gcloud
argument lists, a runner that runs them or (under --dry-run) prints them, and
errors a user can act on.

Local commands are argument lists (never a shell); the one string is the command
a host runs (`--command`), built by `remote.py` with shlex quoting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import Any, Sequence

# The software image per TPU generation ("TPU software versions" in Cloud TPU's docs).
RUNTIME_VERSIONS = {
    "v4": "tpu-ubuntu2204-base",
    "v5e": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
DEFAULT_REMOTE_DIR = "prosocial_jax"  # on every host, relative to the home directory
MODES = ("on-demand", "spot", "reserved", "best-effort")
GCLOUD_INSTALL = "https://cloud.google.com/sdk/docs/install"


class UserError(Exception):
  """Something the user can fix: printed as one message, exit status 2."""


@dataclasses.dataclass(frozen=True)
class SliceShape:
  """A TPU slice type: `accelerator_type` as gcloud spells it; one JAX device per chip
  (v4 and v5p fuse a chip's two TensorCores into one device, megacore)."""
  accelerator_type: str
  generation: str
  chips: int
  hosts: int

  @property
  def chips_per_host(self) -> int:
    return self.chips // self.hosts

  @property
  def runtime_version(self) -> str:
    return RUNTIME_VERSIONS[self.generation]


def slice_shape(accelerator_type: str) -> SliceShape:
  """v4-32 -> 16 chips on 4 hosts. v4/v5p count TensorCores (2 per chip, 4 chips a
  host); v5e (v5litepod-N, also written v5e-N) and v6e count chips: 1, 4 or 8 on one
  host, from 16 on 4 chips a host."""
  name = accelerator_type.strip().lower()
  match = re.fullmatch(r"(v4|v5p|v5litepod|v5e|v6e)-(\d+)", name)
  if not match:
    raise UserError(f"Unknown TPU accelerator type {accelerator_type!r}: expected e.g. v4-32, "
                    "v5p-8, v5litepod-16 (or v5e-16), v6e-16.")
  family, count = match.group(1), int(match.group(2))
  if family in ("v4", "v5p"):
    if count < 8 or count % 8:
      raise UserError(f"{accelerator_type}: {family} sizes count TensorCores, a multiple of 8 "
                      f"({family}-8 is one host of 4 chips).")
    chips = count // 2
    return SliceShape(name, family, chips, max(1, chips // 4))
  generation = "v5e" if family in ("v5e", "v5litepod") else "v6e"
  gcloud_name = f"{'v5litepod' if generation == 'v5e' else 'v6e'}-{count}"
  if count in (1, 4, 8):
    return SliceShape(gcloud_name, generation, count, 1)
  if count >= 16 and count % 4 == 0:
    return SliceShape(gcloud_name, generation, count, count // 4)
  raise UserError(f"{accelerator_type}: {generation} slices have 1, 4 or 8 chips on one host, "
                  "or 16 and more (a multiple of 4) on 4 chips a host.")


# ----------------------------------------------------------------------------- target


@dataclasses.dataclass(frozen=True)
class Target:
  """The slice a command works on and how to reach its hosts."""
  tpu: str
  project: str
  zone: str
  remote_dir: str = DEFAULT_REMOTE_DIR
  internal_ip: bool = False
  iap: bool = False

  @property
  def location(self) -> list[str]:
    return ["--zone", self.zone, "--project", self.project]


def add_job_args(parser, *, accelerator_type: bool = True) -> None:
  """--job (default: the newest) and, for commands that address every host, --accelerator_type."""
  parser.add_argument("--job", default="latest", help="the job's name (default: the newest)")
  if accelerator_type:
    parser.add_argument("--accelerator_type", help="the slice's type (default: described)")


def add_target_args(parser: argparse.ArgumentParser, tpu_required: bool = True) -> None:
  group = parser.add_argument_group("slice")
  group.add_argument("--tpu", required=tpu_required,
                     help="name of the TPU VM (and of its queued resource)")
  group.add_argument("--project", help="Google Cloud project (default: $CLOUDSDK_CORE_PROJECT, "
                     "$GOOGLE_CLOUD_PROJECT, then `gcloud config get-value project`)")
  group.add_argument("--zone", help="zone, e.g. us-central2-b (default: $CLOUDSDK_COMPUTE_ZONE, "
                     "then `gcloud config get-value compute/zone`)")
  group.add_argument("--remote_dir", default=DEFAULT_REMOTE_DIR,
                     help="the project's folder on every host, relative to the home directory "
                          "(code/, .venv/, jobs/ inside; default %(default)s)")
  group.add_argument("--internal_ip", action="store_true",
                     help="ssh to the hosts' internal IPs (from a VM in the same network)")
  group.add_argument("--iap", action="store_true",
                     help="ssh through Identity-Aware Proxy (hosts without external IPs)")
  parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                      help="print the exact commands, run none")


def _gcloud_config(key: str) -> str | None:
  if shutil.which("gcloud") is None:
    return None
  result = subprocess.run(["gcloud", "config", "get-value", key], capture_output=True,
                          text=True, check=False)
  value = result.stdout.strip()
  return value if result.returncode == 0 and value and value != "(unset)" else None


def resolve_target(args: argparse.Namespace) -> Target:
  """Project and zone from the flags, the environment, or gcloud's configuration."""
  project = (args.project or os.environ.get("CLOUDSDK_CORE_PROJECT")
             or os.environ.get("GOOGLE_CLOUD_PROJECT") or _gcloud_config("project"))
  if not project:
    raise UserError("No Google Cloud project: pass --project=PROJECT, or set one with "
                    "`gcloud config set project PROJECT` (or $CLOUDSDK_CORE_PROJECT).")
  zone = args.zone or os.environ.get("CLOUDSDK_COMPUTE_ZONE") or _gcloud_config("compute/zone")
  if not zone:
    raise UserError("No zone: pass --zone=ZONE (one that offers your TPU type, e.g. "
                    "us-central2-b for v4), or `gcloud config set compute/zone ZONE`.")
  remote_dir = args.remote_dir.strip().rstrip("/")
  if remote_dir in ("", ".", "..") or not re.fullmatch(r"[A-Za-z0-9._/-]+", remote_dir):
    raise UserError(f"--remote_dir={args.remote_dir!r} must name a folder of its own, in "
                    "letters, digits and . _ / - (setup replaces its code/ subfolder).")
  return Target(args.tpu, project, zone, remote_dir, args.internal_ip, args.iap)


# ------------------------------------------------------------------ gcloud argument lists


def _ssh_flags(target: Target) -> list[str]:
  return (["--internal-ip"] if target.internal_ip else []) + \
         (["--tunnel-through-iap"] if target.iap else [])


def ssh(target: Target, command: str, worker: str = "all",
        ssh_args: Sequence[str] = ()) -> list[str]:
  """Runs `command` (a shell string) on `worker` ("all": every host, in parallel)."""
  args = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", target.tpu, *target.location,
          f"--worker={worker}", f"--command={command}", *_ssh_flags(target)]
  return args + (["--", *ssh_args] if ssh_args else [])


def scp_to(target: Target, local_path: str, remote_path: str, worker: str = "all") -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "scp", local_path,
          f"{target.tpu}:{remote_path}", *target.location, f"--worker={worker}",
          *_ssh_flags(target)]


def scp_from(target: Target, remote_path: str, local_path: str, worker: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "scp", f"{target.tpu}:{remote_path}",
          local_path, *target.location, f"--worker={worker}", *_ssh_flags(target)]


def qr_create(target: Target, shape: SliceShape, mode: str, runtime_version: str,
              service_account: str | None = None, network: str | None = None,
              subnetwork: str | None = None, internal_ips: bool = False,
              valid_until: str | None = None, scopes: str | None = None) -> list[str]:
  """A queued resource whose node has the slice's name. Best-effort exists in
  gcloud's alpha track only."""
  if mode not in MODES:
    raise UserError(f"--mode must be one of {MODES}, got {mode!r}.")
  track = ["alpha"] if mode == "best-effort" else []
  args = ["gcloud", *track, "compute", "tpus", "queued-resources", "create", target.tpu,
          f"--node-id={target.tpu}", *target.location,
          f"--accelerator-type={shape.accelerator_type}", f"--runtime-version={runtime_version}"]
  args += {"on-demand": [], "spot": ["--spot"], "reserved": ["--reserved"],
           "best-effort": ["--best-effort"]}[mode]
  for flag, value in (("--service-account", service_account), ("--network", network),
                      ("--subnetwork", subnetwork), ("--valid-until-duration", valid_until),
                      ("--scopes", scopes)):
    if value:
      args.append(f"{flag}={value}")
  return args + (["--internal-ips"] if internal_ips else [])


def qr_describe(target: Target) -> list[str]:
  return ["gcloud", "compute", "tpus", "queued-resources", "describe", target.tpu,
          *target.location, "--format=json"]


def qr_delete(target: Target) -> list[str]:
  # --force deletes the TPU VM with its request.
  return ["gcloud", "compute", "tpus", "queued-resources", "delete", target.tpu,
          *target.location, "--force", "--quiet"]


def vm_describe(target: Target) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "describe", target.tpu, *target.location,
          "--format=json"]


def vm_delete(target: Target) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "delete", target.tpu, *target.location,
          "--quiet"]


def storage_ls(url: str) -> list[str]:
  return ["gcloud", "storage", "ls", url.rstrip("/") + "/"]


# ------------------------------------------------------------------------------ errors

_HINTS = (
    (r"RESOURCE_EXHAUSTED|[Qq]uota", "quota: the project lacks TPU quota for this type in this "
     "zone (console: IAM & Admin > Quotas, 'TPU ... cores per project per zone'; spot and "
     "preemptible quota is separate from on-demand). Ask for more, or pick a smaller type."),
    (r"[Nn]o more capacity|[Ii]nsufficient capacity|not have enough resources|"
     r"ZONE_RESOURCE_POOL_EXHAUSTED|[Ss]tockout", "capacity: the zone has no free slice of this "
     "type now. A queued resource keeps its place in the queue; or try --mode=spot / "
     "best-effort, another zone that offers the type, or a reservation."),
    (r"SERVICE_DISABLED|API has not been used|tpu\.googleapis\.com.*(disabled|not enabled)",
     "the Cloud TPU API is off for this project: gcloud services enable tpu.googleapis.com"),
    (r"PERMISSION_DENIED|[Pp]ermission .* denied|does not have .*permission",
     "permission: your account needs roles/tpu.admin on the project (and "
     "roles/iam.serviceAccountUser on the VM's service account)."),
    (r"NOT_FOUND|was not found|[Nn]ot found", "not found: check --tpu, --zone and --project "
     "(`gcloud compute tpus tpu-vm list --zone=ZONE`)."),
    (r"gcloud auth login|[Rr]eauthentication|credentials", "credentials: run `gcloud auth login` "
     "(and `gcloud auth application-default login` for gs:// from this machine)."),
    (r"[Ii]nvalid (value|choice).*zone|Invalid location|[Uu]nknown zone", "zone: "
     "`gcloud compute tpus locations list` lists the zones; each offers only some TPU types."),
)


def explain(message: str) -> str:
  """The hints that apply to a gcloud error message (empty when none does)."""
  return "\n".join(f"  hint: {hint}" for pattern, hint in _HINTS if re.search(pattern, message))


def is_not_found(message: str) -> bool:
  return bool(re.search(r"NOT_FOUND|was not found|[Nn]ot found", message))


def display(args: Sequence[str]) -> str:
  """A command for a person to read: a host script shows as the comment saying what
  it does (`--dry-run` prints the scripts in full)."""
  shown = []
  for arg in args:
    purpose = re.search(r"# prosocial_jax: ([^\n]*)", arg)
    shown.append(f"--command=[{purpose.group(1)}: {len(arg)} characters]"
                 if purpose and arg.startswith("--command=") else shlex.quote(arg))
  return " ".join(shown)


class CommandFailed(UserError):
  def __init__(self, args: Sequence[str], returncode: int, stderr: str = ""):
    self.returncode, self.stderr = returncode, stderr
    detail = stderr.strip()[-2000:]
    hints = explain(stderr)
    super().__init__(f"Command failed (exit {returncode}): {display(args)}"
                     + (f"\n{detail}" if detail else "") + (f"\n{hints}" if hints else ""))


# ------------------------------------------------------------------------------ runner


class Runner:
  """Runs argument lists; under dry-run prints each (one shell-ready line) instead.

  In a real run every command is echoed to stderr as `+ ...` before it starts.
  """

  def __init__(self, dry_run: bool = False, out=None, err=None):
    self.dry_run = dry_run
    self.out = out or sys.stdout
    self.err = err or sys.stderr

  def note(self, message: str) -> None:
    print(("# " if self.dry_run else "") + message, file=self.out, flush=True)

  def _announce(self, args: Sequence[str]) -> None:
    if self.dry_run:  # exactly what would run
      print(shlex.join(args), file=self.out, flush=True)
    else:
      print("+ " + display(args), file=self.err, flush=True)

  def _check_tool(self, args: Sequence[str]) -> None:
    if shutil.which(args[0]) is None:
      if args[0] == "gcloud":
        raise UserError("`gcloud` is not on PATH: install the Google Cloud CLI "
                        f"({GCLOUD_INSTALL}), then `gcloud auth login`.")
      raise UserError(f"`{args[0]}` is not on PATH.")

  def run(self, args: Sequence[str], *, capture: bool = False, check: bool = True,
          quiet: bool = False) -> subprocess.CompletedProcess:
    """Runs `args`; `capture` keeps stdout/stderr (else they stream to the console)."""
    args = list(args)
    if not quiet or self.dry_run:
      self._announce(args)
    if self.dry_run:
      return subprocess.CompletedProcess(args, 0, "", "")
    self._check_tool(args)
    result = subprocess.run(args, text=True, check=False,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    if check and result.returncode != 0:
      raise CommandFailed(args, result.returncode, result.stderr or "")
    return result

  def popen(self, args: Sequence[str], **kwargs) -> subprocess.Popen | None:
    """Starts `args` in the background (None under dry-run)."""
    args = list(args)
    self._announce(args)
    if self.dry_run:
      return None
    self._check_tool(args)
    return subprocess.Popen(args, **kwargs)

  def describe(self, args: Sequence[str]) -> dict[str, Any] | None:
    """A `describe --format=json` as a dict; None when the resource does not exist
    (and under dry-run, where nothing is asked)."""
    result = self.run(args, capture=True, check=False, quiet=True)
    if self.dry_run:
      return None
    if result.returncode != 0:
      if is_not_found(result.stderr):
        return None
      raise CommandFailed(args, result.returncode, result.stderr)
    return json.loads(result.stdout or "{}")


# ------------------------------------------------------------------------------- helpers


def queued_resource_state(runner: Runner, target: Target) -> tuple[str | None, str]:
  """(state, reason): ACCEPTED, WAITING_FOR_RESOURCES, PROVISIONING, ACTIVE, FAILED,
  SUSPENDING, SUSPENDED, DELETING, or None when there is no such request."""
  record = runner.describe(qr_describe(target))
  if record is None:
    return None, ""
  state = (record.get("state") or {}).get("state")
  failed = (record.get("state") or {}).get("failedData") or {}
  reason = (failed.get("error") or {}).get("message", "")
  return state, reason


def slice_health(runner: Runner, target: Target) -> tuple[bool | None, str]:
  """(healthy, description) of the TPU VM: healthy is False when it is gone,
  preempted or unhealthy, None when gcloud could not tell (a network hiccup)."""
  try:
    record = runner.describe(vm_describe(target))
  except CommandFailed as error:
    return None, f"describe failed: {error.stderr.strip()[-300:]}"
  if runner.dry_run:
    return True, "dry run"
  if record is None:
    return False, f"TPU VM {target.tpu} no longer exists"
  state, health = record.get("state", "?"), record.get("health")
  healthy = state == "READY" and health in (None, "HEALTHY")
  return healthy, f"state {state}" + (f", health {health}" if health else "")


def hosts_of(runner: Runner, target: Target, accelerator_type: str | None) -> SliceShape | None:
  """The slice's shape: from --accelerator_type, else from describing the TPU VM."""
  if accelerator_type:
    return slice_shape(accelerator_type)
  record = runner.describe(vm_describe(target))
  if runner.dry_run:
    runner.note("(dry run: pass --accelerator_type to see per-host commands for every host; "
                "assuming one host)")
    return None
  if record is None:
    raise UserError(f"TPU VM {target.tpu} not found in {target.zone} ({target.project}); "
                    "create it with create.py.")
  accelerator = record.get("acceleratorType", "").split("/")[-1]
  if not accelerator:
    raise UserError(f"TPU VM {target.tpu} does not name its accelerator type (made with "
                    "--type/--topology?): pass --accelerator_type.")
  return slice_shape(accelerator)


def split_entry_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Our flags before `--`, the entry point's (train / eval) flags after it."""
  argv = list(argv)
  if "--" in argv:
    at = argv.index("--")
    return argv[:at], argv[at + 1:]
  return argv, []


def main_guard(main) -> None:
  """Runs a command's main(): a UserError is one message and exit status 2."""
  try:
    sys.exit(main(sys.argv[1:]))
  except UserError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print("interrupted (jobs started on the hosts keep running; stop.py stops them)",
          file=sys.stderr)
    sys.exit(130)
