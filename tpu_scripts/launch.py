"""Run a training (or evaluation) job on every host of a slice at once, and follow it.

  python tpu_scripts/launch.py --tpu=canary --zone=us-central2-b --project=my-project -- \\
      --gin_file=gin/canary/t5_large.gin --gin_file=gin/partitioning/tpu_v4_32.gin \\
      --gin.MODEL_DIR="'gs://my-bucket/canary_t5_large'" ...

Everything after `--` goes to `python -m prosocial_jax.<entry>` unchanged, quotes
and spaces included. Paths such as gin/... are relative to the installed commit
(<remote_dir>/code on each host; setup_hosts.py puts it there).

On every host, in this order:
  1. free the TPU: stop our earlier jobs, end any process holding /dev/accel* (v4) or
     /dev/vfio/* (v5 and later), remove /tmp/libtpu_lockfile — else JAX finds the
     chips busy and falls back to the CPU;
  2. start the job detached (it survives this connection), output to
     <remote_dir>/jobs/<job>/worker_<N>.log on each host.
All hosts must start it: a process started on some hosts only waits for the others
(JAX's "did you run your code on all TPU hosts?" hang), so a host that fails to start
stops the job everywhere. Then, unless --detach, follow it as watch.py does.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a file: python tpu_scripts/launch.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud, remote, watch
from tpu_scripts.gcloud import Runner, SliceShape, Target, UserError

ENTRIES = ("train", "eval", "infer", "export", "convert")
DEFAULT_PYTHON = "../.venv/bin/python"  # relative to <remote_dir>/code, where the job runs


def add_launch_args(parser: argparse.ArgumentParser) -> None:
  group = parser.add_argument_group("job")
  group.add_argument("--entry", choices=ENTRIES, default="train",
                     help="python -m prosocial_jax.<entry> (default train)")
  group.add_argument("--job", help="the job's name (default <entry>-<date>-<time>)")
  group.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                     help="an environment variable for the job (repeatable); passed on the "
                          "command line, never written to a file")
  group.add_argument("--init_timeout_s", type=int, help="how long the hosts wait for each "
                     "other at start (gin initialize_from_environment.initialization_timeout; "
                     "default 900 s, JAX's own 300 s is short after a cold restart)")
  group.add_argument("--python", default=DEFAULT_PYTHON,
                     help="the hosts' Python (default: the venv setup_hosts.py made)")
  group.add_argument("--allow_local_model_dir", action="store_true",
                     help="accept a MODEL_DIR that is not gs:// on a multi-host slice")
  group.add_argument("--detach", action="store_true", help="start the job and return")


def model_dir_of(entry_args: Sequence[str]) -> str | None:
  """MODEL_DIR from the entry point's flags (--gin.MODEL_DIR=, --gin_bindings=, --model_dir)."""
  found = None
  args = list(entry_args)
  for i, arg in enumerate(args):
    value = None
    if arg.startswith("--gin.MODEL_DIR="):
      value = arg.split("=", 1)[1]
    elif arg.startswith("--gin_bindings="):
      match = re.fullmatch(r"\s*MODEL_DIR\s*=\s*(.*)", arg.split("=", 1)[1])
      value = match.group(1) if match else None
    elif arg.startswith("--model_dir="):
      value = arg.split("=", 1)[1]
    elif arg == "--model_dir" and i + 1 < len(args):
      value = args[i + 1]
    if value is not None:
      found = value.strip().strip("'\"")
  return found


def check_model_dir(entry_args: Sequence[str], shape: SliceShape | None, allow_local: bool,
                    runner: Runner) -> str | None:
  model_dir = model_dir_of(entry_args)
  if model_dir is None:
    runner.note("no MODEL_DIR among the flags: the gin files must set one (gs://... on a "
                "multi-host slice).")
  elif shape and shape.hosts > 1 and not model_dir.startswith("gs://") and not allow_local:
    raise UserError(f"MODEL_DIR={model_dir!r} is not on GCS: the {shape.hosts} hosts of "
                    f"{shape.accelerator_type} share no disk, and every checkpoint is written "
                    "by all of them. Use gs://BUCKET/..., or --allow_local_model_dir.")
  return model_dir


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
  env = {}
  for pair in pairs:
    name, sep, value = pair.partition("=")
    if not sep or not remote.ENV_NAME.fullmatch(name):
      raise UserError(f"--env {pair!r}: expected NAME=VALUE.")
    env[name] = value
  return env


def start(runner: Runner, target: Target, shape: SliceShape | None, job: str,
          command: Sequence[str]) -> None:
  """Frees the accelerator, then starts `command` on every host (or on none)."""
  hosts = shape.hosts if shape else 1
  freed = runner.run(gcloud.ssh(target, remote.free_accelerator(target.remote_dir)),
                     capture=True)
  for record in remote.parse_lines(freed.stdout, "FREED"):
    if record.get("stopped", "none") != "none":
      runner.note(f"worker {record.get('worker')}: stopped {record['stopped']}, which held "
                  "the TPU")
  result = runner.run(gcloud.ssh(target, remote.start_job(target.remote_dir, job, command)),
                      capture=True, check=False)
  if runner.dry_run:
    return
  started = remote.parse_lines(result.stdout, "STARTED")
  if result.returncode != 0 or len(started) != hosts:
    watch.stop_everywhere(runner, target, job)
    raise UserError(f"The job started on {len(started)} of {hosts} host(s), so it was stopped "
                    "on all (the others would wait for the missing ones).\n"
                    + (result.stderr or "").strip()[-2000:])
  runner.note(f"started {job} on {len(started)} host(s); logs on each host: "
              f"{target.remote_dir}/jobs/{job}/worker_<N>.log")


def launch(runner: Runner, target: Target, shape: SliceShape | None, args: argparse.Namespace,
           entry_args: Sequence[str]) -> watch.Outcome:
  """Starts the job on every host and (unless --detach) follows it to its end."""
  if not entry_args:
    raise UserError("Nothing to run: give the entry point's flags after `--`, e.g. "
                    "-- --gin_file=gin/canary/t5_large.gin --gin.MODEL_DIR=\"'gs://b/run'\"")
  check_model_dir(entry_args, shape, args.allow_local_model_dir, runner)
  job = args.job or f"{args.entry}-{time.strftime('%Y%m%d-%H%M%S')}"
  try:
    remote.check_job_name(job)
  except ValueError as error:
    raise UserError(str(error)) from None
  extra = ([f"--gin.initialize_from_environment.initialization_timeout={args.init_timeout_s}"]
           if args.init_timeout_s else [])
  env = parse_env(args.env)
  command = remote.job_command(args.entry, [*entry_args, *extra], args.python, env)
  shown = remote.job_command(args.entry, [*entry_args, *extra], args.python,
                             {name: "..." for name in env})  # values may be secrets
  runner.note(f"job {job} on {target.tpu}: {shlex.join(shown)}")
  start(runner, target, shape, job, command)
  if args.detach:
    runner.note(f"follow it with: python tpu_scripts/watch.py --tpu={target.tpu} "
                f"--zone={target.zone} --project={target.project} --job={job}")
    return watch.Outcome("detached", job=job)
  return watch.follow(runner, target, job, shape.hosts if shape else 1, poll_s=args.poll_s,
                      log_dir=args.log_dir, stream=not args.no_stream,
                      max_unreachable=args.max_unreachable)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      usage="%(prog)s --tpu=NAME [options] -- ENTRY_POINT_FLAGS...")
  gcloud.add_target_args(parser)
  parser.add_argument("--accelerator_type", help="the slice's type (default: described)")
  add_launch_args(parser)
  watch.add_watch_args(parser)
  return parser


def main(argv=None) -> int:
  ours, entry_args = gcloud.split_entry_args(sys.argv[1:] if argv is None else argv)
  args = build_parser().parse_args(ours)
  runner = Runner(args.dry_run)
  target = gcloud.resolve_target(args)
  shape = gcloud.hosts_of(runner, target, args.accelerator_type)
  return watch.report(launch(runner, target, shape, args, entry_args))


if __name__ == "__main__":
  gcloud.main_guard(main)
