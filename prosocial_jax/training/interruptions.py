"""Run the trainer as a child process, interrupt it, resume it, compare with an uninterrupted run.

The machinery behind `tests/training/test_exact_resume.py`, `tests/training/test_soak.py`
and `bench/soak.py` (run from a clone: the jobs use `gin/quickstart.gin`):

    job = Job(model_dir, flags=SOAK_FLAGS, cache_dir=...)
    report = soak(job, steps=120, phases=["step", "save", "eval", "sigterm"], rng=random.Random(0))
    differing(final_state(reference_dir, 120), final_state(job.model_dir, 120))  # [] when exact

A phase is where the interruption lands:
  step     SIGKILL between or during train steps (not at a save or evaluation step);
  save     SIGKILL while one of the next three asynchronous saves is being written
           (its unfinished `checkpoint_<n>.orbax-checkpoint-tmp` folder is left behind);
  eval     SIGKILL during one of the next two periodic evaluations (after its step's
           log line, before its result line);
  sigterm  SIGTERM during steps: the trainer must save at that step and exit with 143.
Each interruption records the step the run had reached, the step the next run
resumed from (the difference is the steps lost) and how long the next run took from
its start to its first new step.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the clone: gin/quickstart.gin

# The job of the exact-resume tests: the quickstart's tiny T5 and task, short lengths.
QUICKSTART_FLAGS = ("--gin_file=gin/quickstart.gin", "--gin.train.eval_at_end=False",
                    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 24}")
STEP_LINE = re.compile(r" step (\d+)/(\d+) \| ")
RESUMED_LINE = re.compile(r"Resumed from .* at step (\d+)\.")
PHASES = ("step", "save", "eval", "sigterm")
SIGTERM_STATUS = 128 + signal.SIGTERM


@dataclasses.dataclass
class Job:
  """One training run's command: MODEL_DIR, gin flags, and a shared compilation cache."""
  model_dir: pathlib.Path
  flags: Sequence[str] = ()
  checkpoint_every: int = 10
  eval_every: int | None = None
  log_every: int = 10
  cache_dir: str | None = None  # JAX's persistent cache: later runs skip compiling

  def command(self, steps: int) -> list[str]:
    flags = [*QUICKSTART_FLAGS, f"--gin.MODEL_DIR='{self.model_dir}'",
             f"--gin.TRAIN_STEPS={steps}", f"--gin.train.checkpoint_every={self.checkpoint_every}",
             f"--gin.train.log_every={self.log_every}", *self.flags]
    if self.eval_every:
      flags.append(f"--gin.train.eval_every={self.eval_every}")
    return [sys.executable, "-m", "prosocial_jax.train", *flags]

  def env(self) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    if self.cache_dir:
      env.update(JAX_COMPILATION_CACHE_DIR=self.cache_dir,
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.pop("XLA_FLAGS", None)  # one device, as the quickstart
    return env


def run(job: Job, steps: int, timeout: float = 600) -> str:
  """Runs the job to its end; returns its output (stdout and stderr)."""
  result = subprocess.run(job.command(steps), cwd=ROOT, env=job.env(), capture_output=True,
                          text=True, timeout=timeout)
  if result.returncode != 0:
    raise RuntimeError(f"the run exited with {result.returncode}:\n"
                       f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
  return result.stdout + result.stderr


class Child:
  """A training process whose output lines are collected, with their arrival times."""

  def __init__(self, job: Job, steps: int):
    self.job = job
    self.started = time.monotonic()
    self.process = subprocess.Popen(job.command(steps), cwd=ROOT, env=job.env(), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
    self.lines: list[tuple[float, str]] = []
    self._changed = threading.Condition()
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self) -> None:
    for line in self.process.stdout:
      with self._changed:
        self.lines.append((time.monotonic(), line.rstrip("\n")))
        self._changed.notify_all()
    with self._changed:
      self.lines.append((time.monotonic(), None))  # end of output
      self._changed.notify_all()

  def wait_for(self, matches: Callable[[str], bool], timeout: float = 600):
    """(arrival time, line) of the first line that `matches`; None if the output ended."""
    deadline = time.monotonic() + timeout
    seen = 0
    with self._changed:
      while True:
        for when, line in self.lines[seen:]:
          if line is None:
            return None
          if matches(line):
            return when, line
        seen = len(self.lines)
        if not self._changed.wait(timeout=max(deadline - time.monotonic(), 0)):
          raise TimeoutError(f"no such line within {timeout} s:\n{self.output[-3000:]}")

  def wait_for_step(self, step: int, timeout: float = 600):
    def reached(line):
      found = STEP_LINE.search(line)
      return found is not None and int(found.group(1)) >= step
    return self.wait_for(reached, timeout)

  @property
  def output(self) -> str:
    return "\n".join(line for _, line in list(self.lines) if line is not None)

  def last_step(self) -> int | None:
    steps = [int(m.group(1)) for _, line in list(self.lines) if line
             for m in [STEP_LINE.search(line)] if m]
    return steps[-1] if steps else None

  def resumed_step(self) -> int:
    found = self.wait_for(lambda line: RESUMED_LINE.search(line) is not None
                          or STEP_LINE.search(line) is not None)
    match = found and RESUMED_LINE.search(found[1])
    return int(match.group(1)) if match else 0

  def finish(self, timeout: float = 600) -> int:
    status = self.process.wait(timeout=timeout)
    self._reader.join(timeout=30)
    return status

  def stop(self, sig: int) -> int:
    self.process.send_signal(sig)
    return self.finish()


@dataclasses.dataclass
class Interruption:
  phase: str
  signal: str
  run_started_at: int            # the step this run resumed from
  signalled_at_step: int         # the last step it had logged when the signal was sent
  reached_step: int              # the last step it completed (SIGTERM: the step it saved)
  confirmed: bool                # the signal landed in `phase` (see the module docstring)
  exit_status: int
  resumed_at: int | None = None  # the step the next run resumed from
  seconds_to_resume: float | None = None  # next run: start to its first new step
  seconds_to_restore: float | None = None  # next run: start to its "Resumed from" line
  output: str = dataclasses.field(default="", repr=False)  # this run's output

  @property
  def steps_lost(self) -> int | None:
    return None if self.resumed_at is None else self.reached_step - self.resumed_at


@dataclasses.dataclass
class SoakReport:
  interruptions: list[Interruption]
  final_output: str
  seconds: float


def _unfinished_save(model_dir: pathlib.Path, step: int) -> bool:
  return any(model_dir.glob(f"checkpoint_{step}.orbax-checkpoint-tmp*"))


def _step_target(rng: random.Random, start: int, steps: int, avoid: Sequence[int]) -> int:
  """A step after `start` that is neither a save nor an evaluation step."""
  choices = [s for s in range(start + 1, min(start + 2 * max(avoid), steps))
             if all(s % every for every in avoid)]
  return rng.choice(choices) if choices else start + 1


def _interrupt(child: Child, job: Job, phase: str, start: int, steps: int,
               rng: random.Random) -> Interruption:
  avoid = [job.checkpoint_every] + ([job.eval_every] if job.eval_every else [])
  sig, confirmed = signal.SIGKILL, True
  if phase in ("step", "sigterm"):
    if child.wait_for_step(_step_target(rng, start, steps, avoid)) is None:
      raise RuntimeError(f"the run ended before the {phase} interruption:\n{child.output[-3000:]}")
    time.sleep(rng.uniform(0, 0.03))
    sig = signal.SIGTERM if phase == "sigterm" else signal.SIGKILL
    signalled = child.last_step()
    status = child.stop(sig)
    reached = child.last_step() if sig == signal.SIGTERM else signalled
  elif phase == "save":  # one of the next three saves
    saves = [s for s in range(start + 1, steps + 1) if s % job.checkpoint_every == 0 or s == steps]
    target = rng.choice(saves[:3])
    deadline = time.monotonic() + 600
    while not _unfinished_save(job.model_dir, target) and child.process.poll() is None:
      if time.monotonic() > deadline:
        raise TimeoutError(f"the save of step {target} did not start within 600 s")
      time.sleep(0.002)
    signalled = reached = child.last_step()
    status = child.stop(sig)
    # Still unfinished after the kill: the save was cut off midway.
    confirmed = _unfinished_save(job.model_dir, target)
  elif phase == "eval":  # one of the next two evaluations
    evals = [s for s in range(start + 1, steps + 1) if s % job.eval_every == 0]
    if not evals:
      raise ValueError(f"no evaluation is left after step {start} of {steps}")
    target = rng.choice(evals[:2])
    if child.wait_for_step(target) is None:
      raise RuntimeError(f"the run ended before evaluating:\n{child.output[-3000:]}")
    time.sleep(rng.uniform(0, 0.01))
    signalled = reached = child.last_step()
    status = child.stop(sig)
    confirmed = (f"step {target}: validation perplexity" not in child.output
                 and child.last_step() == target)
  else:
    raise ValueError(f"unknown phase {phase!r}; one of {PHASES}")
  return Interruption(phase, signal.Signals(sig).name, start, signalled or start,
                      reached or start, confirmed, status, output=child.output)


def soak(job: Job, steps: int, phases: Sequence[str], rng: random.Random,
         report: Callable[[Interruption], None] | None = None) -> SoakReport:
  """Interrupts the job once per phase, restarting it each time, then runs it to the end."""
  began = time.monotonic()
  interruptions: list[Interruption] = []
  for phase in [*phases, None]:
    child = Child(job, steps)
    try:
      start = child.resumed_step()
      if interruptions:
        previous = interruptions[-1]
        previous.resumed_at = start
        restored = start and child.wait_for(lambda line: RESUMED_LINE.search(line) is not None)
        first = child.wait_for_step(start + 1)
        previous.seconds_to_restore = restored[0] - child.started if restored else None
        previous.seconds_to_resume = first[0] - child.started if first else None
        if report is not None:
          report(previous)
      if phase is None:
        status = child.finish()
        if status != 0:
          raise RuntimeError(f"the final run exited with {status}:\n{child.output[-3000:]}")
        return SoakReport(interruptions, child.output, time.monotonic() - began)
      interruptions.append(_interrupt(child, job, phase, start, steps, rng))
    finally:
      if child.process.poll() is None:
        child.process.kill()
        child.finish()
  raise AssertionError("unreachable")


def final_state(model_dir: pathlib.Path, step: int) -> dict:
  """The saved train state of `step` as {key path: numpy array}."""
  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  path = pathlib.Path(model_dir) / f"checkpoint_{step}" / "state"
  state = ocp.StandardCheckpointer().restore(path)
  flat = jax.tree_util.tree_flatten_with_path(state)[0]
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def differing(reference: dict, other: dict) -> list[str]:
  """The arrays that are not bitwise equal (all of them when the trees differ)."""
  import numpy as np
  if reference.keys() != other.keys():
    return sorted(set(reference) ^ set(other))
  return [k for k in reference if not np.array_equal(reference[k], other[k])]
