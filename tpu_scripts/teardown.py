"""Delete a TPU VM slice (its queued resource too), so that billing stops.

  python tpu_scripts/teardown.py --tpu=canary --zone=us-central2-b --project=my-project

MODEL_DIR on GCS is not touched. Logs left on the hosts are lost: fetch them first
with logs.py if you need them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/teardown.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud
from tpu_scripts.gcloud import Runner, Target


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser)
  return parser


def teardown(runner: Runner, target: Target) -> None:
  """Deletes the queued resource with its TPU VM, or a TPU VM created without one."""
  state, _ = gcloud.queued_resource_state(runner, target)
  if state is not None or runner.dry_run:
    runner.run(gcloud.qr_delete(target), capture=True)
    runner.note(f"deleted the queued resource {target.tpu} (was {state or '?'}) and its TPU VM.")
    return
  if runner.describe(gcloud.vm_describe(target)) is not None:
    runner.run(gcloud.vm_delete(target), capture=True)
    runner.note(f"deleted the TPU VM {target.tpu}.")
    return
  runner.note(f"nothing named {target.tpu} in {target.zone} ({target.project}).")


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  teardown(Runner(args.dry_run), gcloud.resolve_target(args))
  return 0


if __name__ == "__main__":
  gcloud.main_guard(main)
