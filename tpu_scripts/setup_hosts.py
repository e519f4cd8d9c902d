"""Install this commit on every host of a slice at once, then check the hosts agree.

  python tpu_scripts/setup_hosts.py --tpu=canary --zone=us-central2-b --project=my-project

On every host, in --remote_dir (default ~/prosocial_jax):
  code/    the commit (default HEAD): `git archive` of this clone copied to the hosts,
           or cloned from --repo_url; code/COMMIT names it
  .venv/   Python 3.11 (the runtime images ship 3.10; uv fetches 3.11) with
           `pip install -e "code[tpu]"` and jax / jaxlib pinned to --jax_version
           (default: the version installed here), plus --constraints if given
  jobs/    the jobs' logs (launch.py)
Then, after freeing the chips, every host runs tpu_scripts/host_check.py at once and
the hosts' reports are compared: each must see all hosts (process 0..n-1 of n — not n
separate VMs), the TPU (not a CPU fallback) with the slice's device count, the same
versions of jax, jaxlib, libtpu and the other pinned packages, and the commit.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/setup_hosts.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud, remote
from tpu_scripts.gcloud import Runner, SliceShape, Target, UserError

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser)
  parser.add_argument("--accelerator_type", help="the slice's type, for the expected hosts and "
                      "devices (default: described by gcloud)")
  add_setup_args(parser)
  return parser


def add_setup_args(parser: argparse.ArgumentParser) -> None:
  group = parser.add_argument_group("installation")
  group.add_argument("--commit", default="HEAD", help="the commit to install (default HEAD)")
  group.add_argument("--repo_url", help="clone from this URL on the hosts instead of copying "
                     "`git archive` of this clone (a public repository, or one the hosts can "
                     "read)")
  group.add_argument("--allow_dirty", action="store_true",
                     help="install the commit although this clone has uncommitted changes "
                          "(they are not installed)")
  group.add_argument("--jax_version", help="pin jax, jaxlib and jax[tpu] (default: the jax "
                     "installed here)")
  group.add_argument("--constraints", help="a pip constraints file (e.g. `pip freeze` of a "
                     "working host) applied to the installation, for identical versions")
  group.add_argument("--installer", choices=("uv", "pip"), default="uv",
                     help="uv (default; fetches Python 3.11) or pip (needs python3.11 on the "
                          "image)")
  group.add_argument("--skip_install", action="store_true", help="only run the check")
  group.add_argument("--skip_check", action="store_true", help="only install")
  group.add_argument("--check_timeout_s", type=int, default=900,
                     help="how long the hosts wait for each other in the check")


def _git(*args: str) -> str:
  try:
    result = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                            text=True, check=False)
  except FileNotFoundError:
    raise UserError("`git` is not on PATH: setup installs a commit of this clone.") from None
  if result.returncode != 0:
    raise UserError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
  return result.stdout.strip()


def resolve_commit(commit: str, allow_dirty: bool) -> str:
  sha = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
  dirty = _git("status", "--porcelain", "--untracked-files=no")
  if dirty and not allow_dirty:
    raise UserError("This clone has uncommitted changes; the hosts get the commit "
                    f"{sha[:12]} without them. Commit them, or pass --allow_dirty.\n{dirty}")
  return sha


def default_jax_version(requested: str | None) -> str:
  if requested:
    return requested
  try:
    return importlib.metadata.version("jax")
  except importlib.metadata.PackageNotFoundError:
    raise UserError("No jax installed here to copy the version from: pass --jax_version "
                    "(e.g. the one pyproject.toml's range allows).") from None


def install_script(remote_dir: str, sha: str, *, archive: str | None, repo_url: str | None,
                   jax_version: str, constraints: str | None, installer: str) -> str:
  """The host's installation: the commit in code/, a Python 3.11 venv with the project."""
  q = shlex.quote
  root = remote.dir_expr(remote_dir)
  if archive:
    fetch = f'tar -xzf {q(archive)} -C "$ROOT/code.new"\nrm -f {q(archive)}\n'
  else:
    fetch = (f'git clone --quiet {q(repo_url)} "$ROOT/code.new"\n'
             f'git -C "$ROOT/code.new" checkout --quiet --detach {q(sha)}\n')
  pins = ["-e", '"$ROOT/code[tpu]"', q(f"jax[tpu]=={jax_version}"), q(f"jax=={jax_version}"),
          q(f"jaxlib=={jax_version}")]
  if constraints:
    pins += ["-c", q(constraints)]
  if installer == "uv":
    venv = ('python3 -m pip install --user --quiet --upgrade "uv>=0.5,<1"\n'
            'UV="$HOME/.local/bin/uv"\n'
            '[ -x "$ROOT/.venv/bin/python" ] || "$UV" venv --quiet --python 3.11 "$ROOT/.venv"\n'
            f'"$UV" pip install --quiet --python "$ROOT/.venv/bin/python" {" ".join(pins)}\n')
  else:
    venv = ('[ -x "$ROOT/.venv/bin/python" ] || python3.11 -m venv "$ROOT/.venv"\n'
            f'"$ROOT/.venv/bin/python" -m pip install --quiet {" ".join(pins)}\n')
  script = f"""set -euo pipefail
shopt -s nullglob
{remote._WORKER}{remote._ALIVE}ROOT={root}
mkdir -p "$ROOT/jobs"
for pidfile in "$ROOT"/jobs/*/pid_"$W"; do
  if alive "$(cat "$pidfile")"; then
    echo "PROSOCIAL_JAX_ERROR worker=$W a job is running ($pidfile): stop.py first" >&2; exit 3
  fi
done
rm -rf "$ROOT/code.new"
mkdir -p "$ROOT/code.new"
{fetch}echo {q(sha)} > "$ROOT/code.new/COMMIT"
rm -rf "$ROOT/code"
mv "$ROOT/code.new" "$ROOT/code"
{venv}echo "PROSOCIAL_JAX_INSTALLED worker=$W commit={sha} python=$("$ROOT/.venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
"""
  return remote.wrap(script, f"install {sha[:12]}")


def check_script(remote_dir: str, timeout_s: int) -> str:
  script = f"""set -euo pipefail
{remote._WORKER}cd {remote.dir_expr(remote_dir)}/code
PROSOCIAL_JAX_WORKER="$W" TF_CPP_MIN_LOG_LEVEL=2 ../.venv/bin/python tpu_scripts/host_check.py --timeout_s {int(timeout_s)}
"""
  return remote.wrap(script, "check the hosts")


def parse_reports(output: str) -> list[dict]:
  reports = []
  for line in (output or "").splitlines():
    if line.startswith("PROSOCIAL_JAX_HOST "):
      reports.append(json.loads(line.split(" ", 1)[1]))
  return sorted(reports, key=lambda r: r.get("process_index", 0))


def check_reports(reports: list[dict], shape: SliceShape | None, commit: str | None) -> list[str]:
  """What is wrong with the hosts' reports (empty: all agree and match the slice)."""
  problems = []
  hosts = shape.hosts if shape else len(reports)
  if len(reports) != hosts:
    problems.append(f"{len(reports)} host(s) reported, the slice has {hosts}.")
  if not reports:
    return problems
  cpu = [f"{r.get('worker')} ({r.get('platform')})" for r in reports if r.get("platform") != "tpu"]
  if cpu:
    problems.append(f"worker(s) {', '.join(cpu)} run JAX off the TPU: another process holds "
                    "the chips (launch.py frees them) or libtpu is missing.")
  counts = {r.get("process_count") for r in reports}
  indices = sorted(r.get("process_index") for r in reports)
  if counts == {1} and hosts > 1:
    problems.append(f"every host reports process 0 of 1: these {len(reports)} hosts are "
                    "separate single-host VMs (or did not join one job), not one slice.")
  elif counts != {hosts} or indices != list(range(hosts)):
    problems.append(f"process indices {indices} of counts {sorted(counts)}: expected 0..{hosts - 1}"
                    f" of {hosts}.")
  for report in reports:
    if report.get("allgather") not in (None, list(range(hosts))):
      problems.append(f"worker {report['worker']}: the collective across hosts returned "
                      f"{report.get('allgather')}, expected {list(range(hosts))}.")
  if shape:
    for report in reports:
      if (report.get("device_count"), report.get("local_device_count")) != \
         (shape.chips, shape.chips_per_host):
        problems.append(f"worker {report['worker']}: {report.get('local_device_count')} local / "
                        f"{report.get('device_count')} devices, expected "
                        f"{shape.chips_per_host} / {shape.chips} ({shape.accelerator_type}).")
  if commit:
    wrong = [str(r["worker"]) for r in reports if r.get("commit") != commit]
    if wrong:
      problems.append(f"worker(s) {', '.join(wrong)} run another commit than {commit[:12]}.")
  names = sorted({n for r in reports for n in r.get("versions", {})})
  for name in names:
    seen = defaultdict(list)
    for report in reports:
      seen[report.get("versions", {}).get(name, "missing")].append(str(report["worker"]))
    if len(seen) > 1:
      problems.append(f"{name} differs between hosts: " + "; ".join(
          f"{version} on worker(s) {', '.join(workers)}" for version, workers in sorted(seen.items())))
  return problems


def install(runner: Runner, target: Target, args: argparse.Namespace) -> str:
  """Installs the commit on every host; returns its sha."""
  sha = resolve_commit(args.commit, args.allow_dirty)
  jax_version = default_jax_version(args.jax_version)
  runner.note(f"installing {sha[:12]} (jax {jax_version}) on every host of {target.tpu}")
  archive = constraints = None
  with tempfile.TemporaryDirectory() as tmp:
    if not args.repo_url:
      local = str(Path(tmp) / f"prosocial_jax-{sha[:12]}.tar.gz")
      archive = f"/tmp/prosocial_jax-{sha[:12]}.tar.gz"
      runner.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar.gz", "-o", local, sha])
      runner.run(gcloud.scp_to(target, local, archive))
    if args.constraints:
      if not Path(args.constraints).is_file():
        raise UserError(f"--constraints={args.constraints}: no such file.")
      constraints = f"/tmp/prosocial_jax-constraints-{sha[:12]}.txt"
      runner.run(gcloud.scp_to(target, args.constraints, constraints))
    runner.run(gcloud.ssh(target, install_script(
        target.remote_dir, sha, archive=archive, repo_url=args.repo_url,
        jax_version=jax_version, constraints=constraints, installer=args.installer)))
  return sha


def check(runner: Runner, target: Target, shape: SliceShape | None, commit: str | None,
          timeout_s: int) -> list[dict]:
  runner.run(gcloud.ssh(target, remote.free_accelerator(target.remote_dir)))
  result = runner.run(gcloud.ssh(target, check_script(target.remote_dir, timeout_s)),
                      capture=True, check=False)
  if runner.dry_run:
    return []
  reports = parse_reports(result.stdout)
  for report in reports:
    print(f"worker {report.get('worker')}: process {report.get('process_index')}/"
          f"{report.get('process_count')}, {report.get('local_device_count')}/"
          f"{report.get('device_count')} {report.get('platform')} devices "
          f"({report.get('device_kind')}), jax {report.get('versions', {}).get('jax')}, "
          f"libtpu {report.get('versions', {}).get('libtpu')}, commit "
          f"{report.get('commit', '')[:12]}")
  problems = check_reports(reports, shape, commit)
  if result.returncode != 0:
    problems.insert(0, f"the check failed on some host (exit {result.returncode}):\n"
                    + (result.stderr or "").strip()[-2000:])
  if problems:
    raise UserError("The hosts do not agree:\n  - " + "\n  - ".join(problems))
  print(f"All {len(reports)} host(s) agree.")
  return reports


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  runner = Runner(args.dry_run)
  target = gcloud.resolve_target(args)
  shape = gcloud.hosts_of(runner, target, args.accelerator_type)
  commit = None
  if not args.skip_install:
    commit = install(runner, target, args)
  if not args.skip_check:
    check(runner, target, shape, commit, args.check_timeout_s)
  return 0


if __name__ == "__main__":
  gcloud.main_guard(main)
