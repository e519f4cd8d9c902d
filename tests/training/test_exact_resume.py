"""A resumed run ends bitwise where the uninterrupted one does (issue 17).

Runs of the real command on a tiny model, each crossing several epoch boundaries
of the input and several periodic saves:
  straight  N steps in one go (for the task: `quickstart_reference`, shared with
            test_soak.py);
  halves    40 steps, then the same command with TRAIN_STEPS=N (the task);
  resumed   a MODEL_DIR holding only the straight run's checkpoint_40, run to N (the
            packed mixture: what it adds is its input position, saved with the state).
Their final parameters and optimizer states must be bitwise equal. Runs killed with
SIGKILL (during steps, an asynchronous save, an evaluation) or stopped by SIGTERM
are test_soak.py's.
"""

import shutil

import pytest

from prosocial_jax.data import synthetic
from prosocial_jax.training.interruptions import Job, differing, final_state, run

from .conftest import RESUME_EVERY, RESUME_STEPS

# Resuming at 40 (just after an epoch boundary) is the case that used to fail
# (issue 17: 156 of 159 arrays differed at step 120).
SPLIT = 40
KEEP_ALL = "--gin.train.keep_checkpoints=None"


def _assert_bitwise_equal(reference, other, label):
  assert len(reference) > 20 and reference["['step']"] == RESUME_STEPS
  bad = differing(reference, other)
  assert not bad, f"{label}: {len(bad)} of {len(reference)} arrays differ, e.g. {bad[:3]}"


def _resume_to_the_end(job):
  output = run(job, RESUME_STEPS)
  assert f"Resumed from {job.model_dir} at step {SPLIT}." in output and "replaying" not in output


@pytest.mark.slow
def test_resume_is_exact_on_the_quickstart_task(quickstart_reference, tmp_path, jax_cache_dir):
  halves = Job(tmp_path / "halves", checkpoint_every=RESUME_EVERY, flags=[KEEP_ALL],
               cache_dir=jax_cache_dir)
  run(halves, SPLIT)
  _resume_to_the_end(halves)
  _assert_bitwise_equal(final_state(quickstart_reference.model_dir, RESUME_STEPS),
                        final_state(halves.model_dir, RESUME_STEPS), "halves")


@pytest.mark.slow
def test_resume_is_exact_on_a_packed_mixture(tmp_path, jax_cache_dir):
  data_root = synthetic.write_data_root(str(tmp_path / "data"), dialogues=12)
  flags = [KEEP_ALL, f"--gin.DATA_ROOT='{data_root}'",
           "--gin.MIXTURE_OR_TASK_NAME='canary_mixture'", "--gin.PACK=True"]
  straight, resumed = (Job(tmp_path / name, checkpoint_every=RESUME_EVERY, flags=flags,
                           cache_dir=jax_cache_dir) for name in ("straight", "resumed"))
  run(straight, RESUME_STEPS)
  shutil.copytree(straight.model_dir / f"checkpoint_{SPLIT}",
                  resumed.model_dir / f"checkpoint_{SPLIT}")
  _resume_to_the_end(resumed)
  _assert_bitwise_equal(final_state(straight.model_dir, RESUME_STEPS),
                        final_state(resumed.model_dir, RESUME_STEPS), "resumed")
