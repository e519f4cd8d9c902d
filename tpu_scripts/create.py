"""Request a TPU VM slice through a queued resource and wait until it is ACTIVE.

  python tpu_scripts/create.py --tpu=canary --accelerator_type=v4-32 --zone=us-central2-b \\
      --project=my-project --mode=spot

The runtime image follows the generation (v4: tpu-ubuntu2204-base, v5e:
v2-alpha-tpuv5-lite, v5p: v2-alpha-tpuv5, v6e: v2-alpha-tpuv6e; --runtime_version
overrides). Running it again is harmless: an ACTIVE slice is left as it is, a
request still in the queue is waited for. A FAILED or SUSPENDED (preempted) request
is reported with its reason; --recreate deletes it and asks again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/create.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud
from tpu_scripts.gcloud import Runner, Target, UserError

WAITING = ("ACCEPTED", "CREATING", "WAITING_FOR_RESOURCES", "PROVISIONING")
BROKEN = ("FAILED", "SUSPENDING", "SUSPENDED")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser)
  add_create_args(parser)
  return parser


def add_create_args(parser: argparse.ArgumentParser) -> None:
  group = parser.add_argument_group("creation")
  group.add_argument("--accelerator_type", required=True,
                     help="v4-8 ... v4-4096, v5litepod-N (or v5e-N), v5p-N, v6e-N")
  group.add_argument("--mode", choices=gcloud.MODES, default="on-demand",
                     help="on-demand (default), spot (cheaper, preemptible), reserved (your "
                          "reservation), best-effort (gcloud alpha)")
  group.add_argument("--runtime_version", help="TPU software version (default: the one for "
                     "the generation)")
  group.add_argument("--service_account", help="the VM's service account (default: the "
                     "project's Compute Engine default); it needs access to your buckets")
  group.add_argument("--scopes", help="the VM's access scopes, e.g. cloud-platform (needed "
                     "for gs:// when your project's default scopes leave Storage out)")
  group.add_argument("--network")
  group.add_argument("--subnetwork")
  group.add_argument("--internal_ips", action="store_true", help="hosts without external IPs "
                     "(then ssh with --internal_ip or --iap)")
  group.add_argument("--valid_until", help="withdraw the request if not filled by then, e.g. 6h")
  group.add_argument("--recreate", action="store_true",
                     help="delete a FAILED or SUSPENDED request and ask again")
  group.add_argument("--no_wait", action="store_true", help="return once requested")
  group.add_argument("--timeout_s", type=float, default=6 * 3600,
                     help="stop waiting after this long (the request stays queued)")
  group.add_argument("--wait_poll_s", type=float, default=30.0,
                     help="seconds between looks at the request while waiting")


def delete_and_wait(runner: Runner, target: Target, poll_s: float, timeout_s: float = 1800):
  runner.run(gcloud.qr_delete(target), capture=True)
  deadline = time.monotonic() + timeout_s
  while not runner.dry_run:
    state, _ = gcloud.queued_resource_state(runner, target)
    if state is None:
      return
    if time.monotonic() > deadline:
      raise UserError(f"{target.tpu} is still {state} after {timeout_s:.0f} s of deletion.")
    time.sleep(poll_s)


def wait_active(runner: Runner, target: Target, timeout_s: float, poll_s: float) -> None:
  """Polls the request until ACTIVE; FAILED / SUSPENDED / a timeout are errors."""
  if runner.dry_run:
    runner.note(f"then poll every {poll_s:g} s until the state is ACTIVE:")
    gcloud.queued_resource_state(runner, target)
    return
  start, last = time.monotonic(), None
  while True:
    state, reason = gcloud.queued_resource_state(runner, target)
    elapsed = time.monotonic() - start
    if state != last:
      runner.note(f"[{elapsed:6.0f} s] {target.tpu}: {state or 'not found'}")
      last = state
    if state == "ACTIVE":
      return
    if state is None:
      raise UserError(f"The queued resource {target.tpu} disappeared while waiting (deleted?).")
    if state in BROKEN:
      hints = gcloud.explain(reason)
      raise UserError(f"The queued resource {target.tpu} is {state}"
                      + (f": {reason}" if reason else "") + (f"\n{hints}" if hints else "")
                      + "\n  create.py --recreate deletes it and requests it again.")
    if elapsed > timeout_s:
      raise UserError(f"{target.tpu} is still {state} after {timeout_s:.0f} s. The request stays "
                      "in the queue: run create.py again to keep waiting, teardown.py to "
                      "withdraw it.")
    time.sleep(poll_s)


def ensure_slice(runner: Runner, target: Target, args: argparse.Namespace) -> None:
  """Makes the slice ACTIVE: creates it, waits for it, or recreates a broken one."""
  shape = gcloud.slice_shape(args.accelerator_type)
  runtime = args.runtime_version or shape.runtime_version
  runner.note(f"{shape.accelerator_type}: {shape.chips} chips on {shape.hosts} host(s), "
              f"runtime {runtime}, {args.mode}")
  state, reason = gcloud.queued_resource_state(runner, target)
  if state == "ACTIVE":
    runner.note(f"{target.tpu} is already ACTIVE.")
    return
  if state in BROKEN or state == "DELETING":
    if not args.recreate and state != "DELETING":
      raise UserError(f"The queued resource {target.tpu} is {state}"
                      + (f": {reason}" if reason else "")
                      + ". Pass --recreate to delete it and request it again.")
    runner.note(f"{target.tpu} is {state}: deleting it and requesting it again.")
    delete_and_wait(runner, target, args.wait_poll_s)
    state = None
  if state in WAITING:
    runner.note(f"{target.tpu} is already requested ({state}).")
  elif state is None:
    runner.run(gcloud.qr_create(target, shape, args.mode, runtime, args.service_account,
                                args.network, args.subnetwork, args.internal_ips,
                                args.valid_until, args.scopes), capture=True)
  else:
    raise UserError(f"The queued resource {target.tpu} is in an unexpected state {state}.")
  if not args.no_wait:
    wait_active(runner, target, args.timeout_s, args.wait_poll_s)
    if not runner.dry_run:
      runner.note(f"{target.tpu} is ACTIVE. Next: setup_hosts.py --tpu={target.tpu} ...")


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  runner = Runner(args.dry_run)
  ensure_slice(runner, gcloud.resolve_target(args), args)
  return 0


if __name__ == "__main__":
  gcloud.main_guard(main)
