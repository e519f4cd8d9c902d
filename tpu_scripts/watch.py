"""Follow a job running on every host of a slice.

  python tpu_scripts/watch.py --tpu=canary [--job=latest]

Worker 0's log streams to the console; every --poll_s seconds each host reports its
process. When one host's process fails (exits non-zero, is killed, or vanishes), the
job is stopped on every host — the others would otherwise wait in a collective until
JAX's timeouts — each host's log is fetched to --log_dir (one file per host) and the
end of the failing host's log is shown. Leaving watch (Ctrl-C) leaves the job running.

Exit status: 0 the job ended well on every host; 1 it failed; 3 the slice is gone,
preempted or unhealthy (supervise.py then recreates it and relaunches).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/watch.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud, remote
from tpu_scripts.gcloud import Runner, Target

EXIT_STATUS = {"succeeded": 0, "detached": 0, "dry_run": 0, "failed": 1, "slice_down": 3}
DEFAULT_LOG_ROOT = "runs/tpu_logs"


@dataclasses.dataclass
class Outcome:
  kind: str  # succeeded, failed, slice_down, detached, dry_run
  message: str = ""
  job: str = ""

  @property
  def exit_status(self) -> int:
    return EXIT_STATUS[self.kind]


def add_watch_args(parser: argparse.ArgumentParser) -> None:
  group = parser.add_argument_group("following")
  group.add_argument("--poll_s", type=float, default=30.0,
                     help="seconds between checks of every host (default %(default)s)")
  group.add_argument("--log_dir", default=None, help=f"where each host's log is fetched to "
                     f"(default {DEFAULT_LOG_ROOT}/<tpu>/<job>/worker_<N>.log)")
  group.add_argument("--max_unreachable", type=int, default=4,
                     help="checks in a row in which some host does not answer before the "
                          "job counts as failed (default %(default)s)")
  group.add_argument("--no_stream", action="store_true",
                     help="do not stream worker 0's log to the console")


def log_dir_for(target: Target, job: str, log_dir: str | None) -> Path:
  return Path(log_dir) if log_dir else Path(DEFAULT_LOG_ROOT) / target.tpu / job


def fetch_logs(runner: Runner, target: Target, job: str, hosts: int, log_dir: Path) -> Path:
  """Copies each host's log of `job` into `log_dir` (worker_<N>.log); a host that
  cannot be reached is skipped with a note."""
  if not runner.dry_run:
    log_dir.mkdir(parents=True, exist_ok=True)
  for worker in range(hosts):
    result = runner.run(gcloud.scp_from(target, f"{target.remote_dir}/jobs/{job}/worker_*.log",
                                        f"{log_dir}/", str(worker)), capture=True, check=False)
    if result.returncode != 0:
      runner.note(f"could not fetch worker {worker}'s log: {result.stderr.strip()[-200:]}")
  return log_dir


def stop_everywhere(runner: Runner, target: Target, job: str) -> None:
  runner.run(gcloud.ssh(target, remote.stop_job(target.remote_dir, job)), capture=True,
             check=False)


def _tail(path: Path, lines: int = 40) -> str:
  try:
    return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
  except OSError:
    return "(log not fetched)\n"


def _start_stream(runner: Runner, target: Target, job: str, lines: int | None):
  return runner.popen(gcloud.ssh(target, remote.tail_log(target.remote_dir, job, lines=lines,
                                                         follow=True), worker="0"),
                      stdin=subprocess.DEVNULL)


def _end(process) -> None:
  if process is None or process.poll() is not None:
    return
  process.terminate()
  try:
    process.wait(timeout=5)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()


def follow(runner: Runner, target: Target, job: str, hosts: int, *, poll_s: float = 30.0,
           log_dir: str | None = None, stream: bool = True, max_unreachable: int = 4) -> Outcome:
  """Follows `job` until it ends on every host, fails on one, or the slice goes down."""
  streamer = _start_stream(runner, target, job, None) if stream else None
  status = gcloud.ssh(target, remote.job_status(target.remote_dir, job))
  try:
    if runner.dry_run:
      runner.note(f"then every {poll_s:g} s, on every host:")
      runner.run(status, capture=True, check=False)
      runner.note("when a host's process fails, on every host:")
      stop_everywhere(runner, target, job)
      runner.note("then each host's log:")
      fetch_logs(runner, target, job, hosts, log_dir_for(target, job, log_dir))
      return Outcome("dry_run", job=job)
    unreachable = 0
    while True:
      time.sleep(poll_s)
      result = runner.run(status, capture=True, check=False, quiet=True)
      states = remote.parse_lines(result.stdout, "STATUS")
      name = states[0].get("job", job) if states else job
      if result.returncode != 0 or len(states) < hosts:
        healthy, health = gcloud.slice_health(runner, target)
        if healthy is False:
          return Outcome("slice_down", f"the slice is down ({health}); {len(states)} of "
                         f"{hosts} host(s) answered.", name)
        unreachable += 1
        runner.note(f"{len(states)} of {hosts} host(s) answered ({health}); "
                    f"try {unreachable} of {max_unreachable}.")
        if unreachable >= max_unreachable:
          stop_everywhere(runner, target, name)
          fetch_logs(runner, target, name, hosts, log_dir_for(target, name, log_dir))
          return Outcome("failed", f"only {len(states)} of {hosts} host(s) answered "
                         f"{unreachable} times in a row; the job was stopped everywhere.", name)
        continue
      unreachable = 0
      failed = [s for s in states if s.get("state") in ("lost", "stopped", "missing")
                or (s.get("state") == "exited" and s.get("code") != "0")]
      if failed:
        stop_everywhere(runner, target, name)
        where = fetch_logs(runner, target, name, hosts, log_dir_for(target, name, log_dir))
        healthy, health = gcloud.slice_health(runner, target)
        what = "; ".join(f"worker {s.get('worker')} {s.get('state')}"
                         + (f" with status {s.get('code')}" if s.get("code") else "")
                         for s in failed)
        first = failed[0].get("worker")
        print(f"\n==> the end of worker {first}'s log ({where}/worker_{first}.log) <==\n"
              + _tail(where / f"worker_{first}.log"), file=sys.stderr)
        kind = "slice_down" if healthy is False else "failed"
        return Outcome(kind, f"{what}; the job was stopped on every host ({health}). "
                       f"Logs: {where}", name)
      if all(s.get("state") == "exited" for s in states):
        where = fetch_logs(runner, target, name, hosts, log_dir_for(target, name, log_dir))
        return Outcome("succeeded", f"the job ended well on all {len(states)} host(s). "
                       f"Logs: {where}", name)
      worker0_running = any(s.get("worker") == "0" and s.get("state") == "running"
                            for s in states)
      if stream and streamer is not None and streamer.poll() is not None and worker0_running:
        streamer = _start_stream(runner, target, name, 0)  # the connection dropped: resume
  finally:
    _end(streamer)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser)
  gcloud.add_job_args(parser)
  add_watch_args(parser)
  return parser


def report(outcome: Outcome) -> int:
  if outcome.kind not in ("dry_run", "detached"):
    stream = sys.stdout if outcome.kind == "succeeded" else sys.stderr
    print(f"{outcome.job}: {outcome.kind.replace('_', ' ')}: {outcome.message}", file=stream)
  return outcome.exit_status


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  runner = Runner(args.dry_run)
  target = gcloud.resolve_target(args)
  shape = gcloud.hosts_of(runner, target, args.accelerator_type)
  return report(follow(runner, target, args.job, shape.hosts if shape else 1,
                       poll_s=args.poll_s, log_dir=args.log_dir, stream=not args.no_stream,
                       max_unreachable=args.max_unreachable))


if __name__ == "__main__":
  gcloud.main_guard(main)
