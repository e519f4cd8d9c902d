"""Fetch a job's logs from every host of a slice (one file per host), or show their ends.

  python tpu_scripts/logs.py --tpu=canary [--job=latest]            # fetch to runs/tpu_logs/
  python tpu_scripts/logs.py --tpu=canary --tail=50                 # the last 50 lines of each
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/logs.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud, remote, watch
from tpu_scripts.gcloud import Runner


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser)
  gcloud.add_job_args(parser)
  parser.add_argument("--tail", type=int, metavar="N",
                      help="print the last N lines of every host's log instead of fetching")
  parser.add_argument("--log_dir", help=f"where to put the logs (default "
                      f"{watch.DEFAULT_LOG_ROOT}/<tpu>/<job>/)")
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  runner = Runner(args.dry_run)
  target = gcloud.resolve_target(args)
  if args.tail is not None:
    runner.run(gcloud.ssh(target, remote.tail_log(target.remote_dir, args.job, lines=args.tail)))
    return 0
  shape = gcloud.hosts_of(runner, target, args.accelerator_type)
  job = args.job
  if job == "latest":  # the folder locally gets the job's own name
    result = runner.run(gcloud.ssh(target, remote.job_status(target.remote_dir, job),
                                   worker="0"), capture=True, check=False)
    names = [r.get("job") for r in remote.parse_lines(result.stdout, "STATUS")]
    job = names[0] if names and names[0] else job
  where = watch.fetch_logs(runner, target, job, shape.hosts if shape else 1,
                           watch.log_dir_for(target, job, args.log_dir))
  if not runner.dry_run:
    for path in sorted(where.glob("worker_*.log")):
      print(path)
  return 0


if __name__ == "__main__":
  gcloud.main_guard(main)
