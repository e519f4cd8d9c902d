"""Keep a training job alive through preemptions: create the slice, install, launch,
follow; when the slice is preempted or dies, recreate it and launch again.

  python tpu_scripts/supervise.py --tpu=canary --accelerator_type=v4-32 --mode=spot \\
      --zone=us-central2-b --project=my-project --max_restarts=10 -- \\
      --gin_file=gin/canary/t5_large.gin --gin_file=gin/partitioning/tpu_v4_32.gin \\
      --gin.MODEL_DIR="'gs://my-bucket/canary_t5_large'" ...

Every relaunch runs the same command with the same MODEL_DIR (on GCS: it outlives
the slice), and the trainer resumes by itself from MODEL_DIR's newest complete
checkpoint, input position included (README "What resume guarantees"); the newest
checkpoint is named in the log before each relaunch. A slice counts as down when its
queued resource is SUSPENDED or FAILED, or its TPU VM is PREEMPTED, gone or
unhealthy. A job that fails on a healthy slice (a bug, a NaN) is not relaunched
unless --restart_on_failure. At most --max_restarts restarts. Run it where it can
keep running for days (a small VM, tmux); leaving it leaves the job running.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/supervise.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import create, gcloud, launch, setup_hosts, watch
from tpu_scripts.gcloud import Runner, Target, UserError

# How checkpoints name their folders: MODEL_DIR/checkpoint_<step>/ (the trainer's
# prosocial_jax.checkpoints.manager.STEP_PREFIX; kept here so the laptop needs no JAX).
STEP_PREFIX = "checkpoint"


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      usage="%(prog)s --tpu=NAME --accelerator_type=TYPE [options] -- TRAIN_FLAGS...")
  gcloud.add_target_args(parser)
  create.add_create_args(parser)
  setup_hosts.add_setup_args(parser)
  launch.add_launch_args(parser)
  watch.add_watch_args(parser)
  group = parser.add_argument_group("supervision")
  group.add_argument("--max_restarts", type=int, default=5,
                     help="restarts (recreations or relaunches) before giving up (default "
                          "%(default)s)")
  group.add_argument("--restart_on_failure", action="store_true",
                     help="also relaunch after a failure on a healthy slice")
  group.add_argument("--skip_setup", action="store_true",
                     help="the hosts need no installation (your own image or startup script)")
  group.add_argument("--model_dir", help="MODEL_DIR, where the flags after -- do not say it")
  return parser


def latest_checkpoint(runner: Runner, model_dir: str | None) -> int | None:
  """The newest step with a checkpoint folder in a gs:// MODEL_DIR (None: none yet)."""
  if not model_dir or not model_dir.startswith("gs://"):
    return None
  result = runner.run(gcloud.storage_ls(model_dir), capture=True, check=False, quiet=True)
  steps = [int(m.group(1)) for line in (result.stdout or "").splitlines()
           if (m := re.search(rf"/{STEP_PREFIX}_(\d+)/?$", line.strip()))]
  return max(steps) if steps else None


def slice_ready(runner: Runner, target: Target) -> tuple[bool, str]:
  state, reason = gcloud.queued_resource_state(runner, target)
  if state != "ACTIVE":
    return False, f"queued resource {state or 'absent'}" + (f": {reason}" if reason else "")
  healthy, health = gcloud.slice_health(runner, target)
  return healthy is not False, health


def supervise(runner: Runner, target: Target, args: argparse.Namespace,
              entry_args: list[str]) -> int:
  shape = gcloud.slice_shape(args.accelerator_type)
  model_dir = args.model_dir or launch.model_dir_of(entry_args)
  launch.check_model_dir(entry_args, shape, args.allow_local_model_dir, runner)
  args.recreate, args.no_wait, args.detach = True, False, False
  base = args.job or f"{args.entry}-{time.strftime('%Y%m%d-%H%M%S')}"
  restarts, installed = 0, args.skip_setup
  while True:
    ready, why = (False, "dry run") if runner.dry_run else slice_ready(runner, target)
    try:
      if not ready:
        if not runner.dry_run:
          runner.note(f"{target.tpu} is not ready ({why}): (re)creating it.")
          state, _ = gcloud.queued_resource_state(runner, target)
          if state == "ACTIVE":  # the request stands but its VM is preempted or broken
            create.delete_and_wait(runner, target, args.wait_poll_s)
        create.ensure_slice(runner, target, args)
        installed = args.skip_setup
      if not installed:
        commit = setup_hosts.install(runner, target, args)
        if not args.skip_check:
          setup_hosts.check(runner, target, shape, commit, args.check_timeout_s)
        installed = True
      step = latest_checkpoint(runner, model_dir)
      runner.note(f"MODEL_DIR {model_dir}: " + (f"newest checkpoint {STEP_PREFIX}_{step}; the "
                  "trainer resumes from it" if step is not None else
                  "no checkpoint yet; training starts at step 0"))
      args.job = base if restarts == 0 else f"{base}-restart{restarts}"
      outcome = launch.launch(runner, target, shape, args, entry_args)
    except UserError as error:  # a slice that dies under setup or start is a preemption too
      if runner.dry_run or slice_ready(runner, target)[0]:
        raise
      outcome = watch.Outcome("slice_down", f"{error}".splitlines()[0], args.job or base)
    if outcome.kind in ("succeeded", "dry_run"):
      return watch.report(outcome)
    retry = outcome.kind == "slice_down" or args.restart_on_failure
    if not retry:
      return watch.report(outcome)
    restarts += 1
    if restarts > args.max_restarts:
      watch.report(outcome)
      raise UserError(f"Gave up after {args.max_restarts} restart(s); MODEL_DIR keeps the "
                      "checkpoints: supervise.py again resumes from the newest.")
    runner.note(f"{outcome.kind.replace('_', ' ')}: {outcome.message}\nrestart {restarts} of "
                f"{args.max_restarts}")


def main(argv=None) -> int:
  ours, entry_args = gcloud.split_entry_args(sys.argv[1:] if argv is None else argv)
  args = build_parser().parse_args(ours)
  if args.entry != "train":
    raise UserError("supervise.py relaunches training (the trainer resumes by itself); "
                    "use launch.py for --entry=" + args.entry)
  if not entry_args:
    raise UserError("Nothing to run: give the training flags after `--`.")
  runner = Runner(args.dry_run)
  return supervise(runner, gcloud.resolve_target(args), args, entry_args)


if __name__ == "__main__":
  gcloud.main_guard(main)
