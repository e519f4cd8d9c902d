"""Where a run's input stream starts: at the beginning, or exactly where a checkpoint left it.

Every checkpoint records the input's identity (`InputSettings` plus the number of
hosts and a fingerprint — example count and sha256 — of each task's training
split) next to each host's tf.data iterator position. On resume:

* identity unchanged: each host's iterator is restored, and the run continues
  with exactly the batch the uninterrupted run would have taken next (parameters
  and optimizer state end bitwise equal on CPU; `tests/training/test_exact_resume.py`);
* identity changed (other data files, batch size, seed, lengths, packing, task or
  mixture, host count): the saved positions describe another stream.
  `on_input_change='refuse'` (the default) stops with the list of differences;
  `'replay'` builds the new stream and skips the batches that hold the examples
  already trained on (step × old batch size ÷ new batch size), logging that the
  order now differs from an uninterrupted run;
* a checkpoint without iterator state (written by another tool), or whose saved
  position cannot be read back (a damaged file): the stream is rebuilt and the
  first `step` batches skipped, which gives the same batches, only slower.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import jax
import seqio

from prosocial_jax.checkpoints.integrity import describe_error
from prosocial_jax.training import input_pipeline

logger = logging.getLogger("prosocial_jax")

INPUT_CHANGE_POLICIES = ("refuse", "replay")
# Version 2: epoch orders from stateless seeds (tasks/sources.py). A version-1
# iterator position cannot be restored into a version-2 pipeline.
STREAM_VERSION = 2


class InputChangedError(ValueError):
  """The checkpoint's input stream is not the one this run configures."""


@dataclasses.dataclass(frozen=True)
class InputSettings:
  """What decides the training stream (with the data files themselves)."""
  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  batch_size: int
  seed: int
  pack: bool

  def open(self, *, start_step: int = 0) -> input_pipeline.InputIterator:
    return input_pipeline.train_batches(
        self.mixture_or_task_name, self.task_feature_lengths, self.batch_size,
        seed=self.seed, pack=self.pack, start_step=start_step)


def data_fingerprints(mixture_or_task_name: str, split: str = "train") -> dict[str, Any]:
  """{task: {"examples": n, "sha256": ...}} of the split each task's source last built."""
  provider = seqio.get_mixture_or_task(mixture_or_task_name)
  tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
  return {task.name: task.source.built[split] for task in tasks
          if split in getattr(task.source, "built", {})}


def input_identity(settings: InputSettings) -> dict[str, Any]:
  """The record stored in every checkpoint's metadata (after the stream was built)."""
  record = dataclasses.asdict(settings)
  record["task_feature_lengths"] = dict(settings.task_feature_lengths)
  record["stream_version"] = STREAM_VERSION
  record["hosts"] = jax.process_count()
  record["data"] = data_fingerprints(settings.mixture_or_task_name)
  return record


def input_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """One line per difference; keys an older checkpoint did not record are not compared."""
  saved = {"stream_version": 1, **saved}
  lines = [f"  {key}: checkpoint {saved[key]!r}, this run {current.get(key)!r}"
           for key in sorted(saved) if key != "data" and saved[key] != current.get(key)]
  saved_data, current_data = saved.get("data"), current.get("data", {})
  if saved_data is not None:
    for task in sorted(set(saved_data) | set(current_data)):
      old, new = saved_data.get(task), current_data.get(task)
      if old == new:
        continue
      if old is None or new is None:
        lines.append(f"  data of {task}: {'absent from' if old is None else 'only in'} "
                     "the checkpoint's input")
      else:
        lines.append(f"  data of {task}: checkpoint {old['examples']} examples "
                     f"(sha256 {old['sha256'][:12]}…), this run {new['examples']} examples "
                     f"(sha256 {new['sha256'][:12]}…)")
  return lines


def open_input_stream(settings: InputSettings, *, checkpointer=None, step: int | None = None,
                      saved_identity: Mapping[str, Any] | None = None,
                      on_input_change: str = "refuse"):
  """(this host's batches positioned after `step`, the identity to record in checkpoints)."""
  if on_input_change not in INPUT_CHANGE_POLICIES:
    raise ValueError(f"train.on_input_change must be one of {INPUT_CHANGE_POLICIES}, "
                     f"got {on_input_change!r}")
  batches = settings.open()  # Reads the data: fingerprints are known after this.
  identity = input_identity(settings)
  if not step:
    return batches, identity
  if checkpointer is None or not checkpointer.has_input_state(step):
    logger.info("Checkpoint %d has no input-pipeline state: replaying %d batches to "
                "resume the same stream.", step, step)
    return settings.open(start_step=step), identity
  differences = input_differences(saved_identity or {}, identity)
  if not differences:
    try:
      checkpointer.restore_input(step, batches)
    except Exception as error:  # whatever TF raises for a damaged file: same stream by replay
      logger.warning("The input position of checkpoint %d (%s/checkpoint_%d/input) cannot be "
                     "read (%s): replaying %d batches to resume the same stream.", step,
                     checkpointer.model_dir, step, describe_error(error), step)
      return settings.open(start_step=step), identity
    return batches, identity
  if on_input_change == "refuse":
    raise InputChangedError(
        f"The input changed since checkpoint {step} in {checkpointer.model_dir}:\n" +
        "\n".join(differences) +
        "\nThe saved input position belongs to the old stream. Restore the old settings "
        "and data to resume exactly, or set --gin.train.on_input_change=\"'replay'\" to "
        "continue on the new stream after the examples already trained on.")
  old_batch = int(saved_identity.get("batch_size", settings.batch_size))
  skip = step * old_batch // settings.batch_size
  logger.warning("The input changed since checkpoint %d:\n%s\nReplaying the new stream "
                 "to its batch %d (the examples already trained on); batches from here "
                 "differ from an uninterrupted run.", step, "\n".join(differences), skip)
  return settings.open(start_step=skip), identity
