import numpy as np
import pytest

import tasks
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.training.input_pipeline import train_batches

LENGTHS = {"inputs": 64, "targets": 16}


@pytest.fixture(autouse=True)
def _sample_data():
  tasks.set_data_root(sample_data_root())
  yield
  tasks.set_data_root(None)


def _equal(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("saved_at", [3, 14, 40])
def test_saved_iterator_resumes_with_the_next_batch(tmp_path, saved_at):
  # The sample's 106 training examples are 13.25 batches of 8. A save just after an
  # epoch boundary (14, 40) is where a seed-generator shuffle used to lose its epoch
  # count: the restored stream then repeated an earlier epoch's order from the 3rd
  # epoch after the save (issue 17). 70 batches cross five boundaries.
  run = train_batches("prosocial_dialog_canary", LENGTHS, 8, seed=3)
  for _ in range(saved_at):
    next(run)
  run.save(str(tmp_path / "process_0"))
  expected = [next(run) for _ in range(70)]

  fresh = train_batches("prosocial_dialog_canary", LENGTHS, 8, seed=3)
  fresh.restore(str(tmp_path / "process_0"))
  differing = [saved_at + i + 1 for i, batch in enumerate(expected)
               if not _equal(next(fresh), batch)]
  assert not differing, f"steps {differing[:5]}... differ from the uninterrupted stream"


def test_skipping_reaches_the_same_batch_as_restoring(tmp_path):
  uninterrupted = train_batches("prosocial_dialog_canary", LENGTHS, 4, seed=3)
  batches = [next(uninterrupted) for _ in range(6)]
  skipped = train_batches("prosocial_dialog_canary", LENGTHS, 4, seed=3, start_step=5)
  assert _equal(next(skipped), batches[5])
  assert not _equal(batches[4], batches[5])
