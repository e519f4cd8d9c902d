"""SIGTERM (TPU maintenance, a scheduler's eviction): finish the step, save, exit.

While the loop runs, SIGTERM no longer kills the process: it sets a flag, the loop
finishes the current step, saves a checkpoint at that step, logs one line and the
trainer exits with status 143 (128 + SIGTERM), so that a supervisor sees the job
was stopped, not finished. Running the same command resumes from that step with
nothing lost. A periodic evaluation under way gives way at its next batch
(`asked`, read by `evaluator.stoppable`): a preemption's grace period is short;
the step's checkpoint records the evaluation as owed and the resumed run does it
before its first new step.
Outside the loop (setting up, the final evaluation) SIGTERM keeps its default
effect: there is nothing newer to save.

In a multi-process job the hosts must stop at the same step: JAX's preemption
service (started by `jax.distributed.initialize`) catches SIGTERM on any host and
`reached_preemption_sync_point` makes every host agree on the step to save at
(as T5X and MaxText do).
"""

from __future__ import annotations

import signal
import threading

import jax

EXIT_STATUS = 128 + signal.SIGTERM


def _preemption_service():
  from jax._src import distributed  # the documented API only raises when it is off
  state = distributed.global_state
  return state.client is not None and state.preemption_sync_manager is not None


class PreemptionWatch:
  """`reached(step)` is True once the job has been asked to stop (use as a context)."""

  def __init__(self):
    self.received: str | None = None
    self._previous = None
    self._service = jax.process_count() > 1 and _preemption_service()

  def __enter__(self) -> "PreemptionWatch":
    if not self._service and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_signal)
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_signal(self, signum, frame) -> None:
    del frame
    self.received = signal.Signals(signum).name  # only a flag: the loop does the rest

  def asked(self) -> str | None:
    """The signal, as soon as it arrives in a single-process job; None in a multi-process
    one until the hosts' sync point (`reached`) has agreed on it."""
    return self.received

  def reached(self, step: int) -> bool:
    if self._service:
      from jax.experimental import multihost_utils
      if multihost_utils.reached_preemption_sync_point(step):
        self.received = "SIGTERM"
    return self.received is not None
