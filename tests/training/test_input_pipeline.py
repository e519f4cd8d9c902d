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


def test_saved_iterator_resumes_with_the_next_batch(tmp_path):
  run = train_batches("prosocial_dialog_canary", LENGTHS, 4, seed=3)
  for _ in range(3):
    next(run)
  run.save(str(tmp_path / "process_0"))
  expected = [next(run) for _ in range(20)]  # crosses an epoch boundary (106 examples)

  fresh = train_batches("prosocial_dialog_canary", LENGTHS, 4, seed=3)
  fresh.restore(str(tmp_path / "process_0"))
  assert all(_equal(next(fresh), batch) for batch in expected)


def test_skipping_reaches_the_same_batch_as_restoring(tmp_path):
  uninterrupted = train_batches("prosocial_dialog_canary", LENGTHS, 4, seed=3)
  batches = [next(uninterrupted) for _ in range(6)]
  skipped = train_batches("prosocial_dialog_canary", LENGTHS, 4, seed=3, start_step=5)
  assert _equal(next(skipped), batches[5])
  assert not _equal(batches[4], batches[5])
