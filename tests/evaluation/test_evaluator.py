"""The evaluator's model-function loop: padded batches back in order, progress logged."""

import logging

import numpy as np
import tensorflow as tf

from prosocial_jax.evaluation import evaluator


def _outputs_and_log(dataset, caplog):
  with caplog.at_level(logging.INFO, logger="prosocial_jax"):
    results = evaluator._run(dataset, 4, lambda batch: batch["x"] * 2, "predict t")
  return results, caplog.text


def test_every_example_once_and_progress_after_the_last_batch(caplog):
  dataset = tf.data.Dataset.from_tensor_slices({"x": np.arange(10)}).enumerate()
  results, log = _outputs_and_log(dataset, caplog)
  assert [(i, int(v)) for i, v in results] == [(i, 2 * i) for i in range(10)]
  assert "predict t: 3/3 batches, 10 examples, " in log and "examples/s, ETA 0:00:00" in log


def test_progress_with_an_unknown_number_of_batches(caplog):
  dataset = tf.data.Dataset.from_tensor_slices({"x": np.arange(10)}).filter(
      lambda row: True).enumerate()  # a filter hides the cardinality
  results, log = _outputs_and_log(dataset, caplog)
  assert len(results) == 10
  assert "predict t: 3/? batches, 10 examples, " in log and "ETA" not in log
