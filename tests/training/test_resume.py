"""Where a resumed run's input starts: exact when nothing changed, refused or replayed when it did."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

import tasks
from prosocial_jax.checkpoints.manager import Checkpointer
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.training.resume import (InputChangedError, InputSettings, input_differences,
                                           open_input_stream)

LENGTHS = {"inputs": 64, "targets": 16}
TASK = "prosocial_dialog_canary"


@pytest.fixture
def data_root(tmp_path):
  root = tmp_path / "data"
  shutil.copytree(sample_data_root(), root)
  tasks.set_data_root(str(root))
  yield root
  tasks.set_data_root(None)


def _equal(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _saved_run(model_dir, settings, step):
  """A checkpoint at `step` of a run with `settings`; returns (identity, next batch)."""
  batches, identity = open_input_stream(settings)
  for _ in range(step):
    next(batches)
  checkpointer = Checkpointer(str(model_dir))
  checkpointer.save(step, {"x": jnp.zeros(2)}, {"input": identity}, input_iterator=batches)
  checkpointer.wait_until_finished()
  return checkpointer, identity, next(batches)


def test_unchanged_input_continues_with_the_next_batch(data_root, tmp_path):
  settings = InputSettings(TASK, LENGTHS, 8, 0, False)
  checkpointer, identity, expected = _saved_run(tmp_path / "run", settings, 5)
  assert identity["data"][TASK]["examples"] == 106 and len(identity["data"][TASK]["sha256"]) == 64
  assert identity["hosts"] == 1 and identity["batch_size"] == 8
  batches, again = open_input_stream(settings, checkpointer=checkpointer, step=5,
                                     saved_identity=identity)
  assert again == identity and _equal(next(batches), expected)


def test_a_changed_batch_size_is_refused_with_the_difference_and_the_way_out(data_root, tmp_path):
  checkpointer, identity, _ = _saved_run(tmp_path / "run", InputSettings(TASK, LENGTHS, 8, 0, False), 6)
  with pytest.raises(InputChangedError) as error:
    open_input_stream(InputSettings(TASK, LENGTHS, 4, 0, False), checkpointer=checkpointer,
                      step=6, saved_identity=identity)
  message = str(error.value)
  assert "batch_size: checkpoint 8, this run 4" in message
  assert "on_input_change=\"'replay'\"" in message and "checkpoint 6" in message


def test_replay_starts_the_new_stream_after_the_examples_already_trained_on(data_root, tmp_path):
  checkpointer, identity, _ = _saved_run(tmp_path / "run", InputSettings(TASK, LENGTHS, 8, 0, False), 6)
  new = InputSettings(TASK, LENGTHS, 4, 0, False)
  batches, _ = open_input_stream(new, checkpointer=checkpointer, step=6, saved_identity=identity,
                                 on_input_change="replay")
  uninterrupted, _ = open_input_stream(new)
  for _ in range(12):  # 6 steps of 8 examples = 12 batches of 4
    next(uninterrupted)
  assert _equal(next(batches), next(uninterrupted))


def test_changed_data_files_are_noticed(data_root, tmp_path):
  settings = InputSettings(TASK, LENGTHS, 8, 0, False)
  checkpointer, identity, _ = _saved_run(tmp_path / "run", settings, 3)
  train_file = data_root / "prosocial_dialog" / "train.json"
  dialogues = json.loads(train_file.read_text())
  train_file.write_text(json.dumps(dialogues[:-1]))  # one dialogue fewer
  with pytest.raises(InputChangedError, match=rf"data of {TASK}: checkpoint 106 examples "
                     r"\(sha256 [0-9a-f]{12}…\), this run \d+ examples"):
    open_input_stream(settings, checkpointer=checkpointer, step=3, saved_identity=identity)


def test_differences_of_an_older_checkpoint_and_unknown_policies():
  current = {"batch_size": 8, "seed": 0, "stream_version": 2, "hosts": 1, "data": {}}
  assert input_differences({"batch_size": 8, "seed": 0, "stream_version": 2}, current) == []
  assert input_differences({"batch_size": 8, "seed": 0}, current) == [
      "  stream_version: checkpoint 1, this run 2"]
  with pytest.raises(ValueError, match="on_input_change must be one of"):
    open_input_stream(InputSettings(TASK, LENGTHS, 8, 0, False), on_input_change="skip")


def test_a_damaged_input_position_is_named_and_replayed_to_the_same_batch(data_root, tmp_path,
                                                                           caplog):
  settings = InputSettings(TASK, LENGTHS, 8, 0, False)
  checkpointer, identity, expected = _saved_run(tmp_path / "run", settings, 5)
  for path in (tmp_path / "run" / "checkpoint_5" / "input").glob("process_0.*"):
    path.write_bytes(path.read_bytes()[:10])  # cut short
  batches, _ = open_input_stream(settings, checkpointer=checkpointer, step=5,
                                 saved_identity=identity)
  assert _equal(next(batches), expected)
  assert (f"The input position of checkpoint 5 ({tmp_path}/run/checkpoint_5/input) cannot be "
          "read (") in caplog.text
  assert "replaying 5 batches to resume the same stream." in caplog.text
