"""The trainer's `profile_steps`: a few train steps traced with jax.profiler.

`train.profile_steps = (first, count)` traces steps first … first+count-1 into
MODEL_DIR/profile, which TensorBoard's profile plugin (xprof) opens; a local
MODEL_DIR also gets `perfetto_trace.json.gz` for ui.perfetto.dev. Each process
writes its own trace. When the trace is local, where the steps' time went is
logged (`trace_summary.py`).
"""

from __future__ import annotations

import logging

import jax
import numpy as np

from prosocial_jax.training.loop import Action, Loop
from prosocial_jax.training.trace_summary import format_summary, summarize_trace

logger = logging.getLogger("prosocial_jax")


def check_profile_steps(profile_steps) -> None:
  if profile_steps is None:
    return
  if (not isinstance(profile_steps, (tuple, list)) or len(profile_steps) != 2
      or any(not isinstance(n, int) or n < 1 for n in profile_steps)):
    raise ValueError("train.profile_steps must be (first step, number of steps), both >= 1, "
                     f"got {profile_steps!r}")


class Profile(Action):
  """Traces steps `first` … `first + count - 1` (those a resumed run still reaches).

  The trace starts before its first step (`before_step`, once the previous step
  has finished) and this action, the first after each step, stops it after the
  last one, so no logging, evaluation or save of the run is in it.
  """
  name = "profile"
  at_end = True

  def __init__(self, first: int, count: int, log_dir: str):
    super().__init__(0)
    self.first, self.last = first, first + count - 1
    self.log_dir = log_dir
    self._started_at: int | None = None  # the first traced step
    self._done = False

  def before_step(self, loop: Loop) -> None:
    next_step = loop.step + 1
    if self._done or self._started_at is not None or not self.first <= next_step <= self.last:
      return
    jax.block_until_ready(loop.state)  # the previous step's work stays out of the trace
    local = "://" not in self.log_dir
    jax.profiler.start_trace(self.log_dir,
                             create_perfetto_trace=local and jax.process_index() == 0)
    self._started_at = next_step
    logger.info("Profiling steps %d-%d into %s (tensorboard --logdir %s).", next_step,
                self.last, self.log_dir, self.log_dir)

  def due(self, loop: Loop) -> bool:
    return self._started_at is not None and (loop.step >= self.last or loop.at_end)

  def run(self, loop: Loop) -> None:
    first = self._started_at
    jax.block_until_ready(loop.state)  # the traced steps' work, all of it
    self._stop()
    logger.info("Profile of steps %d-%d written to %s.", first, loop.step, self.log_dir)
    if "://" in self.log_dir:
      return
    # The step's compiled HLO names what each fused operation does. The same arguments
    # as the step's own call: jit's caches answer without compiling again.
    hlo_text = loop.train_step.lower(loop.state, loop.batch, loop.dropout_rng,
                                     np.float32(loop.lr_scale)).compile().as_text()
    summary = summarize_trace(self.log_dir, loop.step - first + 1, hlo_text=hlo_text)
    if summary is not None:
      logger.info("Profile: %s", format_summary(summary))

  def close(self, loop: Loop) -> None:
    """A run that failed inside the traced steps still stops the trace (without
    waiting on a state the failure may have left unusable)."""
    if self._started_at is not None:
      self._stop()

  def _stop(self) -> None:
    self._started_at, self._done = None, True
    jax.profiler.stop_trace()
