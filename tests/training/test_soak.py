"""Preemption soak, short version (bench/soak.py is the long one).

The quickstart job is killed with SIGKILL three times, at random moments of three
kinds (during steps, while an asynchronous save is being written, during a
periodic evaluation), then stopped once with SIGTERM, restarted after each, and
run to its end. Its final parameters and optimizer state must be bitwise equal to
the uninterrupted run's (`quickstart_reference`, the same seed), every
interruption must have landed where it was aimed, SIGTERM must lose no step, and a
killed save must be cleaned up by the next run.
"""

import os
import random
import re

import pytest

from prosocial_jax.training.interruptions import (SIGTERM_STATUS, Job, differing, final_state,
                                                  soak)

from .conftest import RESUME_EVERY, RESUME_STEPS

SEED = int(os.environ.get("PROSOCIAL_JAX_SOAK_SEED", "0"))
EVAL_EVERY = 20


@pytest.mark.slow
def test_killed_three_times_and_preempted_the_run_ends_bitwise_equal(
    quickstart_reference, tmp_path, jax_cache_dir):
  job = Job(tmp_path / "soak", checkpoint_every=RESUME_EVERY, eval_every=EVAL_EVERY,
            log_every=1, cache_dir=jax_cache_dir)
  report = soak(job, RESUME_STEPS, ["step", "save", "eval", "sigterm"], random.Random(SEED))
  seed = f"(PROSOCIAL_JAX_SOAK_SEED={SEED})"

  kills, sigterm = report.interruptions[:3], report.interruptions[3]
  for kill in kills:
    assert kill.exit_status == -9 and kill.confirmed, f"{kill} {seed}"
    assert 0 <= kill.steps_lost <= 2 * RESUME_EVERY, f"{kill} {seed}"
  # The killed save left its unfinished folder; the next run said so and removed it.
  after_save = report.interruptions[2].output
  assert re.search(rf"Removing {job.model_dir}/checkpoint_\d+\.orbax-checkpoint-tmp\S*: an "
                   r"unfinished save", after_save), after_save[-3000:]
  assert not list(job.model_dir.glob("*.orbax-checkpoint-tmp*"))

  assert sigterm.exit_status == SIGTERM_STATUS, f"{sigterm} {seed}"
  assert sigterm.reached_step - sigterm.signalled_at_step <= 1  # only the step in flight
  assert sigterm.steps_lost == 0, f"{sigterm} {seed}"
  assert (f"SIGTERM received: stopped after step {sigterm.reached_step} and saved "
          f"{job.model_dir}/checkpoint_{sigterm.reached_step}; exiting with status 143. "
          "Run the same command to resume.") in sigterm.output
  assert f"Resumed from {job.model_dir} at step {sigterm.reached_step}." in report.final_output

  reference = final_state(quickstart_reference.model_dir, RESUME_STEPS)
  bad = differing(reference, final_state(job.model_dir, RESUME_STEPS))
  assert not bad, f"{len(bad)} of {len(reference)} arrays differ, e.g. {bad[:3]} {seed}"
