"""Preemption soak: kill the quickstart job again and again, resume it, compare bitwise.

    python bench/soak.py [--kills 5] [--steps 200] [--seed 0] [--no-sigterm] [--keep DIR]

Runs the quickstart model and task (lengths 64/24, batch 8, one CPU device) once
without interruption, then again under fire: `--kills` SIGKILLs at random moments,
cycling through during steps, during an asynchronous save and during a periodic
evaluation (in a random order), then one SIGTERM (the trainer must save and exit
with 143), a restart after each, and a last run to the end. Prints one line per
interruption (where it landed, steps lost, seconds from restart to the restored
state and to the first new step) and a `RESULT {json}` line; exits 1 if the final
parameters and optimizer state are not bitwise equal to the uninterrupted run's.
The short version of this is tests/training/test_soak.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a clone

from prosocial_jax.training.interruptions import (Job, differing, final_state, run,  # noqa: E402
                                                  soak)


def _phases(kills: int, rng: random.Random, sigterm: bool) -> list[str]:
  kinds = ["step", "save", "eval"]
  phases = []
  while len(phases) < kills:
    rng.shuffle(kinds)
    phases += kinds
  return phases[:kills] + (["sigterm"] if sigterm else [])


def _line(interruption) -> str:
  i = interruption
  where = {"step": "during steps", "save": "during an async save", "eval": "during evaluation",
           "sigterm": "SIGTERM during steps"}[i.phase]
  landed = "" if i.confirmed else " (missed its phase)"
  return (f"{i.signal:7s} {where:22s}{landed} at step {i.reached_step:4d} | resumed at "
          f"{i.resumed_at:4d} | steps lost {i.steps_lost:3d} | restored in "
          f"{i.seconds_to_restore or 0:5.1f} s, first new step after {i.seconds_to_resume:5.1f} s")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kills", type=int, default=5, help="SIGKILLs (plus one SIGTERM)")
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--checkpoint_every", type=int, default=10)
  parser.add_argument("--eval_every", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-sigterm", dest="sigterm", action="store_false")
  parser.add_argument("--keep", default=None, help="work in this folder and keep it")
  args = parser.parse_args(argv)

  work = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="soak_"))
  work.mkdir(parents=True, exist_ok=True)
  cache = str(work / "jax_cache")
  rng = random.Random(args.seed)
  started = time.monotonic()
  reference = Job(work / "straight", checkpoint_every=args.checkpoint_every, cache_dir=cache)
  run(reference, args.steps)
  print(f"uninterrupted run: {time.monotonic() - started:.0f} s", flush=True)

  job = Job(work / "soak", checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
            log_every=1, cache_dir=cache)
  phases = _phases(args.kills, rng, args.sigterm)
  report = soak(job, args.steps, phases, rng, report=lambda i: print(_line(i), flush=True))
  bad = differing(final_state(reference.model_dir, args.steps),
                  final_state(job.model_dir, args.steps))
  kills = [i for i in report.interruptions if i.signal == "SIGKILL"]
  result = {
      "kills_survived": len(kills),
      "sigterm_survived": sum(i.signal == "SIGTERM" and i.exit_status == 143
                              for i in report.interruptions),
      "phases": [i.phase for i in report.interruptions],
      "landed_in_phase": [i.confirmed for i in report.interruptions],
      "steps_lost": [i.steps_lost for i in report.interruptions],
      "seconds_to_restore": [round(i.seconds_to_restore or 0, 1) for i in report.interruptions],
      "seconds_to_resume": [round(i.seconds_to_resume, 1) for i in report.interruptions],
      "bitwise_equal": not bad, "differing_arrays": len(bad),
      "steps": args.steps, "checkpoint_every": args.checkpoint_every, "seed": args.seed,
      "soak_seconds": round(report.seconds), "cpus": os.cpu_count(),
  }
  print(f"final state {'bitwise equal' if not bad else f'DIFFERS in {len(bad)} arrays'} "
        f"to the uninterrupted run's; soak {report.seconds:.0f} s; work folder {work}")
  print("RESULT " + json.dumps(result), flush=True)
  return 0 if not bad else 1


if __name__ == "__main__":
  sys.exit(main())
