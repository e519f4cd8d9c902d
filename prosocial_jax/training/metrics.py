"""Training metrics: summed on device over each log interval, written three ways.

`MetricSums` adds every step's metrics on the device (no host sync per step, as
T5X's `jax.tree.map(jnp.add, ...)`), and remembers the first step whose loss or
gradient norm was not finite (such steps stay out of the means). At each log step
the means over the interval go to the console, TensorBoard (`MODEL_DIR/train/`)
and `MODEL_DIR/metrics.jsonl` (one JSON object per line: `step` and every metric).
Only process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

WATCHED = ("loss", "grad_norm")  # a non-finite value of these stops the run
# With train.on_nonfinite='skip' the step reports `skipped_update` (1.0 when it kept the
# previous parameters: a non-finite loss, gradient norm or update); "update" names the
# last case in messages.
SKIPPED = "skipped_update"
CAUSES = WATCHED + ("update",)


@jax.jit
def _add(sums, run, metrics, step):
  finite = [jnp.isfinite(metrics[name]) for name in WATCHED]
  ok = finite[0] & finite[1]
  if SKIPPED in metrics:
    ok = ok & (metrics[SKIPPED] == 0)
  cause = jnp.where(~finite[0], 0, jnp.where(~finite[1], 1, 2))
  first = (sums["first_nonfinite_step"] < 0) & ~ok
  # A bad step's values stay out of the interval's means (they end the run, or were skipped).
  added = jax.tree.map(lambda total, value: jnp.where(ok, total + value, total),
                       sums["values"], metrics)
  consecutive = jnp.where(ok, 0, run + 1)
  return {"values": added, "count": sums["count"] + ok.astype(jnp.int32),
          "bad": sums["bad"] + (~ok).astype(jnp.int32),
          "longest_bad_run": jnp.maximum(sums["longest_bad_run"], consecutive),
          "first_nonfinite_step": jnp.where(first, step, sums["first_nonfinite_step"]),
          "nonfinite_metric": jnp.where(first, cause, sums["nonfinite_metric"])}, consecutive


class MetricSums:
  """Device-side sums of the step metrics since the last `take()`.

  Steps whose loss or gradient norm is not finite (or whose update was skipped) are
  counted apart, and the first of them remembered; the means cover the other steps.
  """

  def __init__(self):
    self._sums = None
    self._run = jnp.zeros((), jnp.int32)  # bad steps in a row, across intervals

  def add(self, metrics: Mapping[str, jax.Array], step: int) -> None:
    if self._sums is None:
      zero = jnp.zeros((), jnp.int32)
      self._sums = {"values": jax.tree.map(jnp.zeros_like, dict(metrics)),
                    "count": zero, "bad": zero, "longest_bad_run": zero,
                    "first_nonfinite_step": jnp.full((), -1, jnp.int32),
                    "nonfinite_metric": jnp.full((), -1, jnp.int32)}
    self._sums, self._run = _add(self._sums, self._run, dict(metrics),
                                 jnp.asarray(step, jnp.int32))

  def first_nonfinite(self) -> tuple[int, str] | None:
    """(step, metric) of the first non-finite loss or gradient norm since the last take
    (metric "update" for an update skipped with finite loss and gradient norm)."""
    if self._sums is None:
      return None
    step = int(jax.device_get(self._sums["first_nonfinite_step"]))
    if step < 0:
      return None
    return step, CAUSES[int(jax.device_get(self._sums["nonfinite_metric"]))]

  def longest_bad_run(self) -> int:
    """The most non-finite steps in a row that ended in this interval (0 if none)."""
    return 0 if self._sums is None else int(jax.device_get(self._sums["longest_bad_run"]))

  def take(self) -> dict[str, float]:
    """Means over the good steps since the last take (then starts again from zero; NaN
    when there was none); with skipping on, `skipped_updates` counts the others."""
    if self._sums is None:
      return {}
    sums = jax.device_get(self._sums)
    self._sums = None
    count = int(sums["count"])
    # An interval whose every update was skipped has no mean: NaN, never a perfect 0 loss.
    means = {name: float(np.asarray(value)) / count if count else math.nan
             for name, value in sums["values"].items() if name != SKIPPED}
    if SKIPPED in sums["values"]:
      means["skipped_updates"] = float(sums["bad"])
    return means


# TensorBoard scalars go through TensorFlow's own summary writer: TensorFlow is a
# dependency already, and its file system layer writes gs:// (and every path
# tf.io.gfile knows) itself; tensorboardX, used before, needed google-cloud-storage
# for gs:// and failed without it.
class ScalarWriter:
  """Event files in `logdir`, one scalar at a time; `close()` flushes them.

  Scalars are written as TensorBoard's scalars plugin stores them (a float32
  tensor tagged with the plugin's name), through `tf.summary.write`, which,
  unlike `tf.summary.scalar`, does not need the tensorboard package installed.
  """

  def __init__(self, logdir: str):
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2
    self._tf = tf
    self._writer = tf.summary.create_file_writer(logdir)
    self._metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

  def add_scalar(self, tag: str, value: float, step: int) -> None:
    with self._writer.as_default():
      self._tf.summary.write(tag, self._tf.constant(float(value), self._tf.float32),
                             step=int(step), metadata=self._metadata)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MetricsWriter:
  """TensorBoard scalars and `metrics.jsonl`, from process 0 only.

  A resumed run first drops the lines of steps after `start_step` (a killed run may
  have logged steps that the resumed one recomputes), so the file tells one history.
  """

  def __init__(self, model_dir: str, start_step: int = 0):
    self._enabled = jax.process_index() == 0
    self._jsonl = os.path.join(model_dir, "metrics.jsonl")
    self._remote = "://" in self._jsonl  # object stores cannot append: rewrite instead
    self._board = None
    self._lines: list[str] = []
    if self._enabled:
      self._board = ScalarWriter(os.path.join(model_dir, "train"))
      if tf.io.gfile.exists(self._jsonl):
        with tf.io.gfile.GFile(self._jsonl) as f:
          self._lines = [line for line in f.read().splitlines()
                         if line.strip() and json.loads(line).get("step", 0) <= start_step]
      with tf.io.gfile.GFile(self._jsonl, "w") as f:
        f.write("".join(line + "\n" for line in self._lines))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._board.add_scalar(name, float(value), step)
    self._board.flush()
    record = {"step": int(step)}
    record.update({k: (float(v) if math.isfinite(float(v)) else str(float(v)))
                   for k, v in scalars.items()})
    line = json.dumps(record)
    if self._remote:
      self._lines.append(line)
      with tf.io.gfile.GFile(self._jsonl, "w") as f:
        f.write("".join(entry + "\n" for entry in self._lines))
    else:
      with open(self._jsonl, "a") as f:
        f.write(line + "\n")

  def close(self) -> None:
    if self._board is not None:
      self._board.close()
