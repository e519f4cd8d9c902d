"""SeqIO evaluation glue: batch the evaluator's examples, call the model, collect.

seqio.Evaluator owns the data (cached, enumerated validation examples) and the
metrics (the task's metric_fns); this module supplies the two model functions it
calls: predict (greedy decoding → fixed-length token ids; ragged ids break
seqio's numpy-2 path) and score (per-example log-likelihood and token count).
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

import jax
import numpy as np
import seqio
import tensorflow as tf

# (batch of numpy features) -> numpy array [batch, ...]
BatchFn = Callable[[dict[str, np.ndarray]], np.ndarray]


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


def _run(dataset, batch_size: int, batch_fn: BatchFn):
  results = []
  for indices, batch in _padded_batches(dataset, batch_size):
    outputs = batch_fn(batch)
    results.extend(zip(indices, list(outputs[:len(indices)])))
  return results


class SeqioEvaluation:
  """Runs a SeqIO evaluation of one task or mixture split with our model fns."""

  def __init__(self, mixture_or_task_name: str,
               task_feature_lengths: Mapping[str, int],
               batch_size: int,
               *,
               split: str = "validation",
               log_dir: str | None = None):
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
    self._evaluator = seqio.Evaluator(
        mixture_or_task_name=mixture_or_task_name,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
        eval_split=split,
        sequence_length=dict(task_feature_lengths),
        logger_cls=loggers if log_dir else (),
        log_dir=log_dir,
        async_compute_metrics=False)
    if not self._evaluator.eval_tasks:
      raise ValueError(
          f"{mixture_or_task_name!r} has no task with a {split!r} split and "
          "metric functions; nothing to evaluate.")

  @property
  def num_examples(self) -> int:
    return sum(int(ds.cardinality().numpy()) if ds.cardinality() >= 0 else 0
               for ds in self._evaluator.cached_model_datasets.values())

  def evaluate(self, predict_batch: BatchFn, score_batch: BatchFn,
               step: int | None = None) -> dict[str, dict[str, float]]:
    """Returns {task_name: {metric: value}}."""
    metrics_future, _ = self._evaluator.evaluate(
        compute_metrics=True,
        step=step,
        predict_fn=lambda ds: _run(ds, self.batch_size, predict_batch),
        score_fn=lambda ds: _run(ds, self.batch_size, score_batch))
    results = metrics_future.result()
    return {task: {k: float(getattr(v, "value", v)) for k, v in m.items()}
            for task, m in results.items()}

  def close(self) -> None:
    self._evaluator.close()


def eval_log_dir(model_dir: str) -> str:
  return os.path.join(model_dir, "inference_eval")


