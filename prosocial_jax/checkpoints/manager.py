"""Orbax checkpoints in MODEL_DIR: `checkpoint_<step>/{state,meta,input}`.

`state` is the TrainState (parameters, optimizer state, step), saved
asynchronously and restored straight onto the current mesh. `meta` is JSON: the
model config and parameter shapes, the vocabulary's fingerprint and the input
settings, so a MODEL_DIR holding a different model is refused with a readable
message instead of an orbax shape error deep in a restore. `input` is each
host's tf.data iterator position (`process_<i>.*`), so a resumed job continues
with exactly the next batch without replaying the stream.

A save that fails (a full disk, a lost bucket) is raised as `CheckpointSaveError`
naming the step, the error and the newest complete checkpoint, which orbax never
touches before the new one is complete. Which checkpoint a run resumes from when
some are damaged is `integrity.py`'s job.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp
from etils import epath

from prosocial_jax.user_errors import UserError

STEP_PREFIX = "checkpoint"


class InputIteratorHandler(ocp.CheckpointHandler):
  """Saves / restores an object with `save(prefix)` / `restore(prefix)`, per host.

  A plain (blocking) handler on purpose: the iterator moves on as soon as the
  save call returns, so its position must be written before that.
  """

  def _prefix(self, directory) -> str:
    return str(epath.Path(directory) / f"process_{jax.process_index()}")

  def save(self, directory, args: "InputIteratorSave"):
    args.iterator.save(self._prefix(directory))

  def restore(self, directory, args: "InputIteratorRestore"):
    args.iterator.restore(self._prefix(directory))
    return args.iterator


@ocp.args.register_with_handler(InputIteratorHandler, for_save=True)
@dataclasses.dataclass
class InputIteratorSave(ocp.args.CheckpointArgs):
  iterator: Any


@ocp.args.register_with_handler(InputIteratorHandler, for_restore=True)
@dataclasses.dataclass
class InputIteratorRestore(ocp.args.CheckpointArgs):
  iterator: Any


class CheckpointSaveError(UserError, OSError):
  """Writing a checkpoint failed (a full disk, a lost bucket); the message names it and
  the newest earlier checkpoint, and the entry points print it without a traceback."""


BEST_METRIC = "perplexity"  # lower is better: validation perplexity


class _DropMissingMetricWarning(logging.Filter):
  # With keep_best, orbax warns at every save without metrics; saves between
  # evaluations have none by design.
  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Requested `tracked_metric`")


logging.getLogger("absl").addFilter(_DropMissingMetricWarning())


class Checkpointer:
  """A thin, typed wrapper over orbax's CheckpointManager.

  Keeps the last `max_to_keep` checkpoints (None: all) and, with `keep_best`, also
  the one with the lowest validation perplexity among those saved with
  `metrics={"perplexity": ...}` (orbax records the metrics in each step's folder,
  so the choice survives restarts).
  """

  def __init__(self, model_dir: str, *, max_to_keep: int | None = 3, keep_best: bool = False,
               async_save: bool = True):
    self.model_dir = str(model_dir)
    policies = [ocp.checkpoint_managers.LatestN(n=max_to_keep)]
    if keep_best:
      policies.append(ocp.checkpoint_managers.BestN(
          get_metric_fn=lambda metrics: metrics[BEST_METRIC], reverse=True, n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        # best_fn makes orbax write each save's metrics, so the best survives restarts.
        best_fn=(lambda metrics: metrics[BEST_METRIC]) if keep_best else None, best_mode="min",
        step_prefix=STEP_PREFIX, enable_async_checkpointing=async_save, create=True)
    self._manager = ocp.CheckpointManager(
        epath.Path(self.model_dir), options=options,
        item_names=("state", "meta", "input"))
    self._pending: int | None = None  # the step of an asynchronous save not yet confirmed
    self._reported: BaseException | None = None  # a save error already raised as ours

  def reload(self) -> None:
    """Lists the steps again (after checkpoints were moved by hand or set aside)."""
    self._manager.reload()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def metrics(self, step: int) -> dict[str, float] | None:
    """The metrics a step was saved with (e.g. validation perplexity), or None."""
    return self._manager.metrics(step)

  def save(self, step: int, state, meta: Mapping[str, Any], *, input_iterator=None,
           metrics: Mapping[str, float] | None = None, force: bool = True) -> bool:
    """Starts saving `step` (asynchronously: the state is written in the background)."""
    self.wait_until_finished()  # a failure of the previous save is reported as its own
    items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta)))
    if input_iterator is not None:
      items["input"] = InputIteratorSave(input_iterator)
    self._pending = step
    try:
      saved = self._manager.save(step, force=force, args=ocp.args.Composite(**items),
                                 metrics=dict(metrics) if metrics else None)
    except Exception as error:
      raise self._save_error(error) from error
    if not saved:
      self._pending = None
    return saved

  def _save_error(self, error: BaseException) -> CheckpointSaveError:
    step, self._pending, self._reported = self._pending, None, error
    root = epath.Path(self.model_dir)
    complete = sorted(int(m.group(1)) for p in root.iterdir()
                      for m in [re.match(rf"^{STEP_PREFIX}_(\d+)$", p.name)]
                      if m and int(m.group(1)) < step) if root.exists() else []
    newest = (f"The newest earlier checkpoint, step {complete[-1]} "
              f"({root / f'{STEP_PREFIX}_{complete[-1]}'}), was not touched: fix the cause "
              "(free space?) and run the same command to resume from it."
              if complete else "There is no earlier checkpoint in MODEL_DIR.")
    return CheckpointSaveError(
        f"Saving checkpoint {step} to {root / f'{STEP_PREFIX}_{step}'} failed: {error}. "
        f"The unfinished save is never resumed from (the next run removes it). {newest}")

  def has_input_state(self, step: int) -> bool:
    return (epath.Path(self.model_dir) / f"{STEP_PREFIX}_{step}" / "input").exists()

  def restore_input(self, step: int, input_iterator) -> None:
    """Moves `input_iterator` (a fresh pipeline) to where it was at `step`."""
    self._manager.restore(
        step, args=ocp.args.Composite(input=InputIteratorRestore(input_iterator)))

  def read_meta(self, step: int) -> dict[str, Any]:
    restored = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"])

  def restore(self, step: int, target):
    """Restores the state onto the shardings carried by `target`.

    `target` must be the abstract TrainState (ShapeDtypeStructs with shardings):
    without it orbax turns optimizer states into plain lists.
    """
    restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    return restored["state"]

  def restore_params(self, step: int, target_params):
    """Only the parameters of the saved state, onto `target_params`' shapes and shardings
    (ShapeDtypeStructs); the optimizer state of that run is not read."""
    target = {"params": target_params}
    path = epath.Path(self.model_dir) / f"{STEP_PREFIX}_{step}" / "state"
    with ocp.PyTreeCheckpointer() as checkpointer:
      restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
          item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
          partial_restore=True))
    return restored["params"]

  def wait_until_finished(self) -> None:
    """Waits for the background save; raises `CheckpointSaveError` if it failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as error:
      if error is self._reported:  # orbax raises a failed save's error at every wait
        return
      if self._pending is None:
        raise
      raise self._save_error(error) from error
    self._pending = None

  def close(self) -> None:
    self.wait_until_finished()
    self._manager.close()
