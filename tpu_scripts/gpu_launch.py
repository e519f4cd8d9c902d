"""Train (or evaluate) on the GPUs of one machine.

  python tpu_scripts/gpu_launch.py -- --gin_file=gin/prost/rot_response.gin \\
      --gin_file=gin/partitioning/gpu_8xh100.gin --gin.MODEL_DIR="'runs/prost'" ...

--processes=one (default): one process drives every GPU, no coordinator needed.
--processes=per_gpu: one process per GPU, joined through jax.distributed on this
machine: PROSOCIAL_JAX_COORDINATOR=127.0.0.1:PORT, PROSOCIAL_JAX_NUM_PROCESSES=N,
PROSOCIAL_JAX_PROCESS_ID=i and JAX_LOCAL_DEVICE_IDS=i (process i uses GPU i).
(Many nodes: tpu_scripts/slurm/train.sbatch.)

Each process writes --log_dir/process_<i>.log; process 0 is also shown here. If one
process fails, the others are stopped (they would wait for it in a collective) and
the end of its log is shown. TensorFlow (the input pipelines) never takes GPU memory:
the entry points hide the GPUs from it, and TF_FORCE_GPU_ALLOW_GROWTH=true keeps any
slip small.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python tpu_scripts/gpu_launch.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tpu_scripts import gcloud
from tpu_scripts.gcloud import UserError

ENTRIES = ("train", "eval", "infer", "export")
# Every process: TF quiet and modest on the GPU if it ever looks; logs unbuffered.
BASE_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            "PYTHONUNBUFFERED": "1"}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      usage="%(prog)s [options] -- ENTRY_POINT_FLAGS...")
  parser.add_argument("--entry", choices=ENTRIES, default="train")
  parser.add_argument("--processes", choices=("one", "per_gpu"), default="one")
  parser.add_argument("--gpus", type=int, help="GPUs to use (default: $CUDA_VISIBLE_DEVICES, "
                      "else `nvidia-smi -L`)")
  parser.add_argument("--port", type=int, default=12355, help="the coordinator's port (per_gpu)")
  parser.add_argument("--python", default=sys.executable, help="default: this Python")
  parser.add_argument("--log_dir", help="default runs/gpu_logs/<entry>-<date>-<time>")
  parser.add_argument("--grace_s", type=float, default=30.0,
                      help="after a failure, seconds between SIGTERM and SIGKILL of the others")
  parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                      help="print the processes' environments and commands, run none")
  return parser


def count_gpus(requested: int | None) -> int:
  if requested:
    return requested
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  if visible is not None and visible.strip():
    return len([d for d in visible.split(",") if d.strip()])
  if shutil.which("nvidia-smi"):
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    gpus = [line for line in result.stdout.splitlines() if line.startswith("GPU ")]
    if result.returncode == 0 and gpus:
      return len(gpus)
  raise UserError("Cannot count the GPUs (no $CUDA_VISIBLE_DEVICES, no nvidia-smi): pass --gpus.")


def plan(args: argparse.Namespace, entry_args: list[str]) -> list[tuple[dict[str, str], list[str]]]:
  """(extra environment, command) of every process."""
  command = [args.python, "-m", f"prosocial_jax.{args.entry}", *entry_args]
  if args.processes == "one":
    return [(dict(BASE_ENV), command)]
  gpus = count_gpus(args.gpus)
  return [({**BASE_ENV, "PROSOCIAL_JAX_COORDINATOR": f"127.0.0.1:{args.port}",
            "PROSOCIAL_JAX_NUM_PROCESSES": str(gpus), "PROSOCIAL_JAX_PROCESS_ID": str(i),
            "JAX_LOCAL_DEVICE_IDS": str(i)}, command) for i in range(gpus)]


def _echo(source, log, console) -> None:
  for line in iter(source.readline, b""):
    log.write(line)
    log.flush()
    console.write(line)
    console.flush()


def _tail(path: Path, lines: int = 40) -> str:
  return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])


def run(processes, log_dir: Path, grace_s: float, poll_s: float = 0.5) -> int:
  """Starts every process, waits; on the first failure stops the rest. Returns the
  first failure's exit status (0 when all succeed)."""
  log_dir.mkdir(parents=True, exist_ok=True)
  children, threads, logs = [], [], []
  try:
    for i, (env, command) in enumerate(processes):
      log = open(log_dir / f"process_{i}.log", "wb")
      logs.append(log)
      child = subprocess.Popen(command, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE if i == 0 else log,
                               stderr=subprocess.STDOUT, start_new_session=True)
      children.append(child)
      if i == 0:
        thread = threading.Thread(target=_echo, args=(child.stdout, log, sys.stdout.buffer),
                                  daemon=True)
        thread.start()
        threads.append(thread)
    while True:
      codes = [child.poll() for child in children]
      failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
      if failed:
        first = failed[0]
        _stop(children, grace_s)
        for thread in threads:
          thread.join(timeout=5)
        print(f"\nprocess {first} failed with status {codes[first]}; the others were stopped."
              f"\n==> the end of {log_dir / f'process_{first}.log'} <==\n"
              + _tail(log_dir / f"process_{first}.log"), file=sys.stderr)
        return codes[first] if codes[first] > 0 else 1
      if all(code == 0 for code in codes):
        for thread in threads:
          thread.join(timeout=5)
        print(f"all {len(children)} process(es) ended well; logs in {log_dir}", file=sys.stderr)
        return 0
      time.sleep(poll_s)
  except KeyboardInterrupt:
    _stop(children, grace_s)
    raise
  finally:
    for log in logs:
      log.close()


def _stop(children, grace_s: float) -> None:
  """SIGTERM to every running child's process group, SIGKILL after `grace_s`."""
  running = [c for c in children if c.poll() is None]
  for child in running:
    try:
      os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
      pass
  deadline = time.monotonic() + grace_s
  for child in running:
    try:
      child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      try:
        os.killpg(child.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
      child.wait()


def main(argv=None) -> int:
  ours, entry_args = gcloud.split_entry_args(sys.argv[1:] if argv is None else argv)
  args = build_parser().parse_args(ours)
  if not entry_args:
    raise UserError("Nothing to run: give the entry point's flags after `--`.")
  processes = plan(args, entry_args)
  log_dir = Path(args.log_dir or f"runs/gpu_logs/{args.entry}-{time.strftime('%Y%m%d-%H%M%S')}")
  if args.dry_run:
    for i, (env, command) in enumerate(processes):
      print(shlex.join(["env", *(f"{k}={v}" for k, v in env.items()), *command])
            + f" > {shlex.quote(str(log_dir / f'process_{i}.log'))} 2>&1")
    return 0
  return run(processes, log_dir, args.grace_s)


if __name__ == "__main__":
  gcloud.main_guard(main)
