"""Stop a job on every host of a slice.

  python tpu_scripts/stop.py --tpu=canary [--job=latest] [--grace_s=30]

Each host sends SIGTERM to the job's process group, then SIGKILL after --grace_s
seconds, and marks the job stopped (watch.py and supervise.py then do not take it for
a crash). The chips are free afterwards; launch.py frees them again anyway.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/stop.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud, remote
from tpu_scripts.gcloud import Runner


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser)
  gcloud.add_job_args(parser, accelerator_type=False)
  parser.add_argument("--grace_s", type=int, default=30,
                      help="seconds between SIGTERM and SIGKILL (default %(default)s)")
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  runner = Runner(args.dry_run)
  target = gcloud.resolve_target(args)
  result = runner.run(gcloud.ssh(target, remote.stop_job(target.remote_dir, args.job,
                                                         args.grace_s)), capture=True)
  for record in remote.parse_lines(result.stdout, "STOPPED"):
    print(f"worker {record.get('worker')}: {record.get('state')}")
  return 0


if __name__ == "__main__":
  gcloud.main_guard(main)
