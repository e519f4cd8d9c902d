"""An evaluation's JSON record and its report, written the same way by `prosocial_jax.eval`
and by the trainer's evaluations (periodic and at the end).

    MODEL_DIR/eval/<task>-<split>-step<N>.json   the record (`make_record`)
    MODEL_DIR/report/index.html, report.md       the report of the latest one (report.py)
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Mapping

logger = logging.getLogger(__name__)


def _finite(value: float) -> float | None:
  return value if math.isfinite(value) else None  # JSON has no NaN


def make_record(results: Mapping[str, Mapping[str, float]], **fields) -> dict[str, Any]:
  """The JSON record of an evaluation: `fields`, the metrics of each task (the confusion
  cells gathered into one matrix per task) and how BLEU and F1 were computed."""
  from prosocial_jax.evaluation import metrics
  return {
      **fields,
      "metrics": {task: {k: _finite(v) for k, v in values.items()
                         if not k.startswith(metrics.CONFUSION_PREFIX)}
                  for task, values in results.items()},
      "confusion_matrix": {task: matrix for task, values in results.items()
                           if (matrix := metrics.confusion_matrix(values)) is not None},
      "settings": {
          "bleu4": f"sacrebleu corpus_bleu, {metrics.bleu_signature()}",
          "f1": "ParlAI unigram F1 (lowercase, punctuation to spaces, a/an/the removed, "
                "whitespace collapsed), mean over examples",
          "perplexity": "exp(-sum log p / sum target tokens) of the gold targets",
          "decoding": "greedy",
      },
  }


def variant(max_examples: int | None = None, decode_weights: str | None = None) -> str:
  """The file-name suffix of an evaluation that is not the plain, whole one
  (`-first<N>` for the first N examples per task, `-<weights>` for packed decoder
  weights), so that it never replaces the record or predictions of one that is."""
  return (f"-first{max_examples}" if max_examples else "") + (
      f"-{decode_weights}" if decode_weights else "")


def record_path(model_dir: str, name: str, split: str, step: int, *,
                max_examples: int | None = None, decode_weights: str | None = None) -> str:
  return os.path.join(model_dir, "eval", f"{name}-{split}-step{step}"
                      f"{variant(max_examples, decode_weights)}.json")


def write_record(path: str, record: Mapping[str, Any]) -> None:
  """The JSON record at `path`, whole or not at all (any tf.io.gfile path)."""
  import tensorflow as tf
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    json.dump(record, f, indent=1)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def write_report(model_dir: str, path: str) -> str | None:
  """The report of the record at `path` (its index.html); None, with the error logged,
  when it cannot be written: the metrics are saved already and stay the result."""
  from prosocial_jax.evaluation import report
  try:
    return report.write_report(model_dir, path)
  except Exception:  # pylint: disable=broad-except
    logger.exception("Could not write the report of %s.", path)
    return None
