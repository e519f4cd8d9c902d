"""TensorBoard on a run's MODEL_DIR (training metrics in MODEL_DIR/train/, evaluations in
MODEL_DIR/eval/).

  python tpu_scripts/tensorboard.py --model_dir=gs://my-bucket/canary_t5_large
  python tpu_scripts/tensorboard.py --model_dir=gs://... --on_worker --tpu=canary ...

Here (the default) TensorBoard reads gs:// through TensorFlow with your application
credentials (`gcloud auth application-default login`). --on_worker runs it on worker
0 of the slice instead, with the VM's service account, and forwards the port through
ssh; either way open http://localhost:PORT.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/tensorboard.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud, remote
from tpu_scripts.gcloud import Runner, UserError


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  gcloud.add_target_args(parser, tpu_required=False)
  parser.add_argument("--model_dir", required=True, help="the run's MODEL_DIR (gs:// or local)")
  parser.add_argument("--port", type=int, default=6006)
  parser.add_argument("--on_worker", action="store_true",
                      help="run TensorBoard on worker 0 of --tpu, forwarded to this machine")
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  runner = Runner(args.dry_run)
  tensorboard = ["-m", "tensorboard.main", "--logdir", args.model_dir, "--port", str(args.port)]
  if args.on_worker:
    if not args.tpu:
      raise UserError("--on_worker needs --tpu (and --zone, --project).")
    target = gcloud.resolve_target(args)
    script = (f"cd {remote.dir_expr(target.remote_dir)}/code && exec "
              + shlex.join(["../.venv/bin/python", *tensorboard, "--host", "localhost"]))
    runner.note(f"open http://localhost:{args.port} (Ctrl-C ends it)")
    runner.run(gcloud.ssh(target, remote.wrap(script, "TensorBoard"), worker="0",
                          ssh_args=["-L", f"{args.port}:localhost:{args.port}"]), check=False)
    return 0
  if importlib.util.find_spec("tensorboard") is None and not args.dry_run:
    raise UserError("TensorBoard is not installed here (pip install tensorboard; reading "
                    "gs:// needs tensorflow too), or use --on_worker.")
  runner.note(f"open http://localhost:{args.port} (Ctrl-C ends it)")
  runner.run([sys.executable, *tensorboard], check=False)
  return 0


if __name__ == "__main__":
  gcloud.main_guard(main)
