"""Which checkpoint of MODEL_DIR can a run resume from? The newest good one, saying why.

A checkpoint can be unusable in several ways, and none of them may stop a run that
has an older good checkpoint, or damage that older checkpoint:

* an unfinished save (`checkpoint_<n>.orbax-checkpoint-tmp*`: the run was killed, or
  the disk filled, while writing it): orbax ignores it; the trainer logs it and
  removes it (`remove_unfinished_saves`);
* a half-written or damaged `checkpoint_<n>` (copied in part, a missing metadata
  file, truncated array files): reading its metadata or restoring its state fails;
* a checkpoint of another model (shapes, config or vocabulary differ).

`ResumeSearch` walks the checkpoints from the newest: a step is good when its
metadata reads and matches this run's model and its whole train state restores.
Every rejected step is reported with its path and the reason; the run resumes from
the newest good one, and the rejected newer ones are renamed to
`checkpoint_<n>.unusable` (kept for inspection, out of orbax's way so that step
`n` can be saved again). With no good checkpoint the run stops with the list,
changing nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from typing import Any, Mapping

import jax
import numpy as np
from etils import epath

from prosocial_jax.checkpoints.compatibility import CheckpointMismatchError, check_compatible
from prosocial_jax.checkpoints.manager import STEP_PREFIX, Checkpointer
from prosocial_jax.user_errors import UserError

logger = logging.getLogger("prosocial_jax")

UNFINISHED = re.compile(rf"^{STEP_PREFIX}_(\d+)\.orbax-checkpoint-tmp(-\d+)?$")
UNUSABLE_SUFFIX = ".unusable"


class UnusableCheckpointsError(UserError, ValueError):
  """MODEL_DIR holds checkpoints, but none of them can be resumed (the message lists
  each with its path and reason; the entry points print it without a traceback)."""


@dataclasses.dataclass(frozen=True)
class Rejected:
  step: int
  path: str
  reason: str
  mismatch: CheckpointMismatchError | None = None  # another model's checkpoint


def describe_error(error: BaseException) -> str:
  """One line out of orbax's / TensorStore's error: the status and the file it names."""
  text = str(error).strip() or type(error).__name__
  first = text.splitlines()[0]
  files = re.findall(r'local file "([^"]+)"', first)
  if files:  # TensorStore: 'OUT_OF_RANGE: Error opening ... of local file "/x/state/d/ab"'
    status = re.match(r"([A-Z_]+): ", first)
    array = re.search(r'Error reading "([^"/]+)/', first)
    return (f"{status.group(1) if status else type(error).__name__} reading {files[-1]}"
            + (f" (array {array.group(1)})" if array else ""))
  first = first.split(" See full TensorStore details")[0]
  return f"{type(error).__name__}: {first[:300]}"


def step_path(model_dir: str, step: int) -> str:
  return str(epath.Path(model_dir) / f"{STEP_PREFIX}_{step}")


def unfinished_saves(model_dir: str) -> list[str]:
  """The folders of saves that never completed (orbax's temporary names)."""
  root = epath.Path(model_dir)
  if not root.exists():
    return []
  return sorted(str(p) for p in root.iterdir() if UNFINISHED.match(p.name))


def remove_unfinished_saves(model_dir: str) -> list[str]:
  """Logs and removes them (process 0; nothing else writes these names)."""
  paths = unfinished_saves(model_dir)
  if jax.process_index() == 0:
    for path in paths:
      logger.warning("Removing %s: an unfinished save (the run stopped, or the disk filled, "
                     "while writing it); it was never a checkpoint.", path)
      epath.Path(path).rmtree()
  _sync("remove_unfinished_saves")
  return paths


def set_aside(model_dir: str, step: int) -> str:
  """Renames checkpoint_<step> to checkpoint_<step>.unusable[-k]; returns the new path."""
  source = epath.Path(step_path(model_dir, step))
  target = epath.Path(str(source) + UNUSABLE_SUFFIX)
  index = 1
  while target.exists():
    index += 1
    target = epath.Path(f"{source}{UNUSABLE_SUFFIX}-{index}")
  source.rename(target)
  return str(target)


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"prosocial_jax:{name}")


def _everywhere(ok: bool) -> bool:
  """True when `ok` holds on every process (a state restored on one host and not on
  another would otherwise make the hosts resume from different steps)."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils
  return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


class _Quiet(logging.Filter):
  # A failed TensorStore read logs "Task exception was never retrieved" with the full
  # spec for every array of the checkpoint; the one-line reason says it all.
  def filter(self, record: logging.LogRecord) -> bool:
    return False


def _drop_closed_loop_errors(previous):
  """An unraisable-exception hook that drops "Event loop is closed" errors: after a
  restore failed, the checkpoint's other reads still finish and report to orbax's
  closed event loop, one traceback per array."""
  def hook(unraisable):
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
      previous(unraisable)
  return hook


class ResumeSearch:
  """The checkpoints of `checkpointer`'s MODEL_DIR, newest first, each checked on demand.

      search = ResumeSearch(checkpointer, meta)
      step, saved_meta = search.next_candidate()    # metadata reads and matches
      state = search.restore(step, target)         # None: rejected, ask for the next
      search.finish(step)                          # logs the choice, sets rejected aside
  """

  def __init__(self, checkpointer: Checkpointer, meta: Mapping[str, Any]):
    self._checkpointer = checkpointer
    self._meta = meta
    self._steps = sorted(checkpointer.all_steps(), reverse=True)
    self.rejected: list[Rejected] = []

  @property
  def model_dir(self) -> str:
    return self._checkpointer.model_dir

  def _reject(self, step: int, reason: str, mismatch=None) -> None:
    path = step_path(self.model_dir, step)
    logger.warning("Cannot resume from %s: %s", path, reason)
    self.rejected.append(Rejected(step, path, reason, mismatch))

  def next_candidate(self) -> tuple[int | None, dict[str, Any]]:
    """The newest unchecked step whose metadata reads and matches this run's model
    ((None, {}) when MODEL_DIR has no checkpoint); raises when all were rejected."""
    while self._steps:
      step = self._steps.pop(0)
      try:
        saved = self._checkpointer.read_meta(step)
      except Exception as error:  # any failure to read it makes the step unusable
        self._reject(step, f"its metadata ({step_path(self.model_dir, step)}/meta/metadata) "
                           f"cannot be read: {describe_error(error)}")
        continue
      try:
        check_compatible(saved, self._meta, model_dir=self.model_dir, step=step)
      except CheckpointMismatchError as error:  # keep its list of differences only
        self._reject(step, "it is a checkpoint of another model:\n" +
                     str(error).split(":\n", 1)[-1].rsplit("\nUse a new MODEL_DIR", 1)[0],
                     mismatch=error)
        continue
      return step, saved
    if self.rejected:
      self._raise_none_usable()
    return None, {}

  def restore(self, step: int, target):
    """The train state of `step` onto `target` (the abstract state), or None when it
    cannot be restored (then the step is rejected)."""
    quiet, hook = _Quiet(), sys.unraisablehook
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addFilter(quiet)
    sys.unraisablehook = _drop_closed_loop_errors(hook)
    state, reason = None, None
    try:
      state = self._checkpointer.restore(step, target)
      sys.unraisablehook = hook  # kept after a failure: the stray reads end later
    except Exception as error:  # a damaged state: whatever orbax raised, say what and where
      reason = describe_error(error)
    finally:
      asyncio_logger.removeFilter(quiet)
    if not _everywhere(reason is None):
      self._reject(step, f"its train state ({step_path(self.model_dir, step)}/state) cannot "
                         f"be restored: {reason or 'failed on another process'}")
      return None
    return state

  def finish(self, step: int) -> None:
    """Called once the run resumes from `step`: sets the rejected newer steps aside."""
    if not self.rejected:
      return
    moved = []
    if jax.process_index() == 0:
      moved = [set_aside(self.model_dir, r.step) for r in self.rejected]
    _sync("set_aside")
    self._checkpointer.reload()
    # One line per checkpoint, its whole reason (another model's lists its differences).
    lines = [f"  {r.path}: {' '.join(part.strip() for part in r.reason.splitlines())}" +
             (f" -> moved to {moved[i]}" if moved else "") for i, r in enumerate(self.rejected)]
    logger.warning("Resuming from step %d (%s), the newest good checkpoint; %d newer one(s) "
                   "could not be used and were set aside:\n%s", step,
                   step_path(self.model_dir, step), len(self.rejected), "\n".join(lines))

  def _raise_none_usable(self):
    if all(r.mismatch is not None for r in self.rejected):
      raise self.rejected[0].mismatch  # another model's run: the usual refusal
    lines = [f"  {r.path}: {r.reason}" for r in self.rejected]
    raise UnusableCheckpointsError(
        f"MODEL_DIR {self.model_dir} has checkpoints but none can be resumed:\n" +
        "\n".join(lines) +
        "\nNothing was changed. Restore a good copy of one of them, or move them away "
        "(or use a new MODEL_DIR) to start from scratch.")
