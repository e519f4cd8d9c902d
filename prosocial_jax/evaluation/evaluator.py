"""SeqIO evaluation glue: batch the evaluator's examples, call the model, collect.

seqio.Evaluator owns the data (cached, enumerated validation examples) and the
metrics (the task's metric_fns); this module supplies the two model functions it
calls: predict (greedy decoding → fixed-length token ids; ragged ids break
seqio's numpy-2 path) and score (per-example log-likelihood and token count).
Both log their progress (batches done / total, examples/s, ETA) every
`PROGRESS_EVERY_S` seconds and after their last batch.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from typing import Callable, Mapping

import jax
import numpy as np
import seqio
import tensorflow as tf

# (batch of numpy features) -> numpy array [batch, ...]
BatchFn = Callable[[dict[str, np.ndarray]], np.ndarray]
PROGRESS_EVERY_S = 30.0

logger = logging.getLogger("prosocial_jax")


def _padded_batches(dataset, batch_size: int):
  """Yields (indices, features) with the last batch padded by repeating row 0."""
  indices, rows = [], []
  for index, features in dataset.as_numpy_iterator():
    indices.append(int(index))
    rows.append(features)
    if len(rows) == batch_size:
      yield indices, {k: np.stack([r[k] for r in rows]) for k in rows[0]}
      indices, rows = [], []
  if rows:
    real = len(rows)
    rows += [rows[0]] * (batch_size - real)
    yield indices, {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def _run(dataset, batch_size: int, batch_fn: BatchFn, what: str):
  """[(index, output)] of every example; logs progress as `what` ("predict <task>")."""
  total = int(dataset.cardinality())
  batches = -(-total // batch_size) if total >= 0 else None
  results, start, logged, done = [], time.monotonic(), 0.0, 0

  def report(elapsed: float) -> None:
    eta = (f", ETA {datetime.timedelta(seconds=round(elapsed / done * (batches - done)))}"
           if batches else "")
    logger.info("%s: %d/%s batches, %d examples, %.1f examples/s%s", what, done,
                batches or "?", len(results), len(results) / max(elapsed, 1e-9), eta)

  for done, (indices, batch) in enumerate(_padded_batches(dataset, batch_size), 1):
    outputs = batch_fn(batch)  # numpy: the batch has finished when it returns
    results.extend(zip(indices, list(outputs[:len(indices)])))
    elapsed = time.monotonic() - start
    if elapsed - logged >= PROGRESS_EVERY_S or done == batches:
      logged = elapsed
      report(elapsed)
  if batches is None and done:  # an unknown total: the last batch was not recognised
    report(time.monotonic() - start)
  return results


class EvaluationInterrupted(Exception):
  """The job was asked to stop (SIGTERM) during an evaluation: it gives way at the next
  batch, so that a preempted run saves its step within the grace period."""


def stoppable(batch_fn: Callable, should_stop: Callable[[], object] | None) -> Callable:
  """`batch_fn`, raising `EvaluationInterrupted` before any batch once `should_stop()`."""
  if should_stop is None:
    return batch_fn

  def checked(*args):
    reason = should_stop()
    if reason:
      raise EvaluationInterrupted(f"asked to stop ({reason})")
    return batch_fn(*args)
  return checked


class NothingToEvaluateError(ValueError):
  """No task of the task or mixture has the split asked for and metric functions."""


class SeqioEvaluation:
  """Runs a SeqIO evaluation of one task or mixture split with our model fns."""

  def __init__(self, mixture_or_task_name: str,
               task_feature_lengths: Mapping[str, int],
               batch_size: int,
               *,
               split: str = "validation",
               max_examples: int | None = None,
               log_dir: str | None = None):
    """`max_examples`: the first N examples of each task's split (None: all)."""
    if jax.process_index() != 0:
      log_dir = None  # every host computes the metrics; process 0 alone writes them
    loggers = (seqio.PyLoggingLogger,)
    if log_dir:
      tf.io.gfile.makedirs(log_dir)
      # Metrics go to TensorBoard through our own writer (seqio's needs the
      # tensorboard package); JSONLogger keeps every prediction for inspection.
      loggers += (seqio.JSONLogger,)
    self.mixture_or_task_name = mixture_or_task_name
    self.task_feature_lengths = dict(task_feature_lengths)
    self.batch_size = batch_size
    self.split = split
    self.max_examples = max_examples
    self._evaluator = seqio.Evaluator(
        mixture_or_task_name=mixture_or_task_name,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
        eval_split=split,
        sequence_length=dict(task_feature_lengths),
        num_examples=max_examples,
        logger_cls=loggers if log_dir else (),
        log_dir=log_dir,
        async_compute_metrics=False)
    if not self._evaluator.eval_tasks:
      raise NothingToEvaluateError(
          f"{mixture_or_task_name!r} has no task with a {split!r} split and "
          "metric functions; nothing to evaluate.")

  @property
  def num_examples(self) -> int:
    return sum(int(ds.cardinality().numpy()) if ds.cardinality() >= 0 else 0
               for ds in self._evaluator.cached_model_datasets.values())

  def evaluate(self, predict_batch: BatchFn, score_batch: BatchFn,
               step: int | None = None) -> dict[str, dict[str, float]]:
    """Returns {task_name: {metric: value}}."""
    # SeqIO hands each model function a task's cached dataset: its name, for the progress log.
    names = {id(ds): name for name, ds in self._evaluator.cached_model_datasets.items()}
    metrics_future, _ = self._evaluator.evaluate(
        compute_metrics=True,
        step=step,
        predict_fn=lambda ds: _run(ds, self.batch_size, predict_batch,
                                   f"predict {names.get(id(ds), '')}"),
        score_fn=lambda ds: _run(ds, self.batch_size, score_batch,
                                 f"score {names.get(id(ds), '')}"))
    results = metrics_future.result()
    return {task: {k: float(getattr(v, "value", v)) for k, v in m.items()}
            for task, m in results.items()}

  def close(self) -> None:
    self._evaluator.close()


def eval_log_dir(model_dir: str) -> str:
  return os.path.join(model_dir, "inference_eval")


