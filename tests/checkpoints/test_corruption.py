"""Damaged checkpoints: each is named with its path and the reason, the newest good one is
used (and the run says which and why), or the run stops listing them; a good checkpoint
is never touched, nor is a save's failure (a full disk) allowed to damage the previous one.

One real run (6 steps, a checkpoint every 2) is copied and damaged in each test:
truncated array files, a missing metadata file, a half-written step folder, an
unfinished save, a checkpoint of another model, all of them at once; and a disk that
fills during a save (the writer raises ENOSPC).
"""

import errno
import hashlib
import json
import logging
import os
import shutil

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler

import tasks
from prosocial_jax.checkpoints.compatibility import CheckpointMismatchError
from prosocial_jax.checkpoints.integrity import (ResumeSearch, UnusableCheckpointsError,
                                                 remove_unfinished_saves, unfinished_saves)
from prosocial_jax.checkpoints.manager import Checkpointer, CheckpointSaveError
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.partitioning import MeshShape, create_mesh
from prosocial_jax.training.optimizers import adam
from prosocial_jax.training.train_state import (abstract_target, init_train_state,
                                                state_shardings)
from prosocial_jax.training.trainer import _dummy_batch

from ..training.conftest import (TRAIN_LENGTHS, dummy_batch_shapes, sample_model_config,
                                 tiny_test_config, train_on_sample)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """checkpoint_2, _4 and _6 of a real run."""
  model_dir = tmp_path_factory.mktemp("run")
  train_on_sample(model_dir, train_steps=6, checkpoint_every=2, keep_checkpoints=None)
  tasks.set_data_root(None)
  return model_dir


@pytest.fixture
def copy(run_dir, tmp_path):
  target = tmp_path / "run"
  shutil.copytree(run_dir, target)
  return target


def _target():
  """The run's abstract train state, on one device."""
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  model = EncoderDecoderModel(sample_model_config())
  abstract, shardings = state_shardings(model, adam(learning_rate=3e-3),
                                        _dummy_batch(8, TRAIN_LENGTHS), mesh)
  return abstract_target(abstract, shardings)


def _resume(model_dir, meta):
  """What the trainer does: the newest step whose metadata and state read back."""
  search = ResumeSearch(Checkpointer(str(model_dir), max_to_keep=None), meta)
  while True:
    step, _ = search.next_candidate()
    if step is None or search.restore(step, _target()) is not None:
      return step, search


def _meta(model_dir, step=2):
  return json.loads((model_dir / f"checkpoint_{step}" / "meta" / "metadata").read_text())


def _fingerprint(folder):
  """{relative path: sha256} of every file under `folder`."""
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def _truncate_arrays(step_dir):
  """Cuts every array data file of the state to half its length; returns them."""
  files = sorted((step_dir / "state" / "d").iterdir())
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(path.stat().st_size // 2)
  return files


def test_truncated_array_files_fall_back_to_the_previous_checkpoint(copy):
  truncated = _truncate_arrays(copy / "checkpoint_6")
  step, search = _resume(copy, _meta(copy))
  assert step == 4
  [rejected] = search.rejected
  assert rejected.step == 6 and rejected.path == f"{copy}/checkpoint_6"
  assert rejected.reason.startswith(f"its train state ({copy}/checkpoint_6/state) cannot be "
                                    "restored: ")
  assert any(str(path) in rejected.reason for path in truncated), rejected.reason


def test_a_missing_metadata_file_is_named(copy):
  (copy / "checkpoint_6" / "meta" / "metadata").unlink()
  step, search = _resume(copy, _meta(copy))
  assert step == 4
  assert search.rejected[0].reason.startswith(
      f"its metadata ({copy}/checkpoint_6/meta/metadata) cannot be read: ")


def test_a_half_written_step_folder_and_an_unfinished_save(copy, caplog):
  partial = copy / "checkpoint_8"  # copied in part: its metadata but no state
  partial.mkdir()
  shutil.copytree(copy / "checkpoint_6" / "meta", partial / "meta")
  unfinished = copy / "checkpoint_10.orbax-checkpoint-tmp"
  shutil.copytree(copy / "checkpoint_6", unfinished)
  caplog.set_level(logging.WARNING, logger="prosocial_jax")

  assert remove_unfinished_saves(str(copy)) == [str(unfinished)]
  assert not unfinished.exists() and unfinished_saves(str(copy)) == []
  assert (f"Removing {unfinished}: an unfinished save (the run stopped, or the disk filled, "
          "while writing it); it was never a checkpoint.") in caplog.text
  step, search = _resume(copy, _meta(copy))
  assert step == 6
  assert [r.step for r in search.rejected] == [8]
  assert search.rejected[0].reason.startswith(f"its train state ({copy}/checkpoint_8/state) "
                                              "cannot be restored: ")


def test_a_checkpoint_of_another_model_is_skipped_and_refused_when_alone(copy, caplog):
  foreign = copy / "checkpoint_8"
  shutil.copytree(copy / "checkpoint_6", foreign)
  meta = _meta(copy)
  other = json.loads(json.dumps(meta))
  other["model_config"]["mlp_dim"] = 128
  (foreign / "meta" / "metadata").write_text(json.dumps(other))
  step, search = _resume(copy, meta)
  assert step == 6
  assert search.rejected[0].reason == (
      "it is a checkpoint of another model:\n"
      "  model_config.mlp_dim: checkpoint has 128, this run has 64")
  with caplog.at_level("WARNING", logger="prosocial_jax"):
    search.finish(step)  # the summary line keeps the difference, not just its heading
  assert (f"  {foreign}: it is a checkpoint of another model: model_config.mlp_dim: "
          f"checkpoint has 128, this run has 64 -> moved to {copy}/checkpoint_8.unusable"
          ) in caplog.text
  shutil.move(str(copy / "checkpoint_8.unusable"), str(foreign))

  for name in ("checkpoint_2", "checkpoint_4", "checkpoint_6"):
    shutil.rmtree(copy / name)
  with pytest.raises(CheckpointMismatchError, match=rf"MODEL_DIR {copy} holds a checkpoint "
                     r"\(step 8\) of another model than the one configured:\n"
                     r"  model_config.mlp_dim: checkpoint has 128, this run has 64"):
    _resume(copy, meta)


def test_with_no_good_checkpoint_the_run_stops_listing_them_and_changes_nothing(copy, run_dir):
  (copy / "checkpoint_2" / "meta" / "metadata").unlink()
  _truncate_arrays(copy / "checkpoint_4")
  (copy / "checkpoint_6" / "meta" / "metadata").write_text('{"model_config": ')  # cut short
  before = _fingerprint(copy)
  with pytest.raises(UnusableCheckpointsError) as error:
    _resume(copy, _meta(run_dir))
  message = str(error.value)
  assert message.startswith(f"MODEL_DIR {copy} has checkpoints but none can be resumed:\n")
  lines = message.splitlines()
  assert lines[1].startswith(f"  {copy}/checkpoint_6: its metadata ({copy}/checkpoint_6/meta/"
                             "metadata) cannot be read: JSONDecodeError")
  assert lines[2].startswith(f"  {copy}/checkpoint_4: its train state ({copy}/checkpoint_4/"
                             "state) cannot be restored: ")
  assert lines[3].startswith(f"  {copy}/checkpoint_2: its metadata ({copy}/checkpoint_2/meta/"
                             "metadata) cannot be read: FileNotFoundError")
  assert lines[-1] == ("Nothing was changed. Restore a good copy of one of them, or move them "
                       "away (or use a new MODEL_DIR) to start from scratch.")
  assert _fingerprint(copy) == before


def _fill_disk_at(monkeypatch, step):
  """The metadata writer of save `step` fails as on a full disk (the state, written
  asynchronously beside it, is then partly written)."""
  real = json_checkpoint_handler.JsonCheckpointHandler._save_fn

  async def full_disk(self, item, directory):
    if f"checkpoint_{step}." in str(directory):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "metadata"))
    return await real(self, item, directory)

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full_disk)


def test_a_resumed_run_sets_a_damaged_checkpoint_aside_and_a_full_disk_stops_it(
    copy, run_dir, monkeypatch, caplog):
  """The trainer itself: checkpoint_6 is damaged, so it resumes from 4, says so and
  moves 6 aside; it recomputes 5 and 6 bitwise as the first run did; then the disk
  fills while step 8 is saved: the run stops naming step 8, and checkpoint_6 is intact."""
  _truncate_arrays(copy / "checkpoint_6")
  untouched = _fingerprint(copy / "checkpoint_4")
  _fill_disk_at(monkeypatch, 8)
  caplog.set_level(logging.INFO, logger="prosocial_jax")
  with pytest.raises(CheckpointSaveError) as error:
    train_on_sample(copy, train_steps=10, checkpoint_every=2, keep_checkpoints=2)
  tasks.set_data_root(None)

  log = caplog.text
  assert f"Cannot resume from {copy}/checkpoint_6: its train state ({copy}/checkpoint_6/state)" \
         " cannot be restored: " in log
  assert (f"Resuming from step 4 ({copy}/checkpoint_4), the newest good checkpoint; 1 newer "
          f"one(s) could not be used and were set aside:\n  {copy}/checkpoint_6: its train "
          f"state") in log
  assert f"-> moved to {copy}/checkpoint_6.unusable" in log
  assert f"Resumed from {copy} at step 4." in log
  assert (copy / "checkpoint_6.unusable").is_dir()

  message = str(error.value).split("\n  In call to configurable")[0]
  assert message.startswith(f"Saving checkpoint 8 to {copy}/checkpoint_8 failed: [Errno 28] "
                            "No space left on device: ")
  assert message.endswith(
      f"The unfinished save is never resumed from (the next run removes it). The newest "
      f"earlier checkpoint, step 6 ({copy}/checkpoint_6), was not touched: fix the cause "
      "(free space?) and run the same command to resume from it.")
  # Step 6 recomputed from step 4 equals the first run's; step 4 was not touched (keep 2:
  # orbax would have deleted it after a complete step 8).
  saved = ocp.StandardCheckpointer()
  jax.tree.map(np.testing.assert_array_equal, saved.restore(run_dir / "checkpoint_6" / "state"),
               saved.restore(copy / "checkpoint_6" / "state"))
  assert _fingerprint(copy / "checkpoint_4") == untouched
  assert unfinished_saves(str(copy)) == [f"{copy}/checkpoint_8.orbax-checkpoint-tmp"]


def _small_state():
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  model = EncoderDecoderModel(tiny_test_config())
  optimizer = optax.adam(1e-3)
  abstract, shardings = state_shardings(model, optimizer, dummy_batch_shapes(), mesh)
  state = init_train_state(model, optimizer, dummy_batch_shapes(), jax.random.key(0), mesh)
  return state, abstract_target(abstract, shardings)


class _FullDiskIterator:
  def save(self, prefix):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), prefix + ".index")


def test_a_full_disk_never_damages_the_previous_checkpoint(tmp_path, monkeypatch):
  """Both ways a save fails: in the background (the state and metadata, reported at the
  next save or wait) and at once (each host's input position, written before returning)."""
  state, target = _small_state()
  checkpointer = Checkpointer(str(tmp_path), max_to_keep=1)
  checkpointer.save(1, state, {"n": 1})
  checkpointer.wait_until_finished()
  _fill_disk_at(monkeypatch, 2)
  checkpointer.save(2, state, {"n": 2})  # returns: the writing goes on in the background
  with pytest.raises(CheckpointSaveError, match=rf"^Saving checkpoint 2 to {tmp_path}/"
                     r"checkpoint_2 failed: \[Errno 28\] No space left on device: .* The newest "
                     rf"earlier checkpoint, step 1 \({tmp_path}/checkpoint_1\), was not touched"):
    checkpointer.wait_until_finished()
  checkpointer.wait_until_finished()  # reported once
  monkeypatch.undo()

  with pytest.raises(CheckpointSaveError, match=rf"^Saving checkpoint 3 to {tmp_path}/"
                     r"checkpoint_3 failed: .*No space left on device: .*process_0.index'\. "):
    Checkpointer(str(tmp_path), max_to_keep=1).save(3, state, {"n": 3},
                                                     input_iterator=_FullDiskIterator())

  fresh = Checkpointer(str(tmp_path), max_to_keep=1)
  assert fresh.all_steps() == [1] and fresh.read_meta(1) == {"n": 1}
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state),
               jax.device_get(fresh.restore(1, target)))
  assert unfinished_saves(str(tmp_path)) == [f"{tmp_path}/checkpoint_{step}.orbax-checkpoint-tmp"
                                             for step in (2, 3)]
