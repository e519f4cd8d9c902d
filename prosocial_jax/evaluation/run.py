"""Evaluate a model's parameters with SeqIO: greedy predictions + gold scores."""

from __future__ import annotations

import logging

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from prosocial_jax.evaluation.evaluator import SeqioEvaluation, stoppable
from prosocial_jax.evaluation.metrics import CONFUSION_PREFIX
from prosocial_jax.inference.model import DecodeOptions, EncoderDecoderModel
from prosocial_jax.partitioning import batch_sharding

logger = logging.getLogger("prosocial_jax")


def evaluate(model: EncoderDecoderModel, params, mesh, rules, evaluation: SeqioEvaluation, *,
             step=None, decode_weights=None, decode: DecodeOptions = DecodeOptions(),
             should_stop=None):
  """SeqIO evaluation: predictions (`decode`, greedy by default) and gold-target scores.

  `evaluation` is built (and closed) by the caller: it reads and caches the
  split, so a training job can build it before training and fail early on bad
  eval data. `decode_weights` ("float32", "bfloat16" or "int8"; None: the plain
  weights) packs the decoder-step weights once for faster decoding (see
  `inference.packed_weights`); scores always use the plain weights.
  `should_stop()` (a training job's preemption flag) is asked before every batch: once
  it is true, `evaluator.EvaluationInterrupted` is raised.
  """
  data_sharding = batch_sharding(mesh, rules)
  # Replicated outputs: every process of a multi-host job can read them.
  replicated = NamedSharding(mesh, PartitionSpec())
  predict = jax.jit(lambda p, batch, step_params: model.predict_batch(
      p, batch, decode=decode, step_params=step_params), out_shardings=replicated)
  score = jax.jit(model.score_batch, out_shardings=replicated)
  step_params = None
  if decode_weights is not None:
    with mesh, nn.logical_axis_rules(rules):
      step_params = jax.jit(model.pack_decode_weights, static_argnums=1)(params, decode_weights)

  def on_mesh(batch):
    return {k: jax.device_put(v, data_sharding) for k, v in batch.items()}

  def predict_batch(batch):
    with mesh, nn.logical_axis_rules(rules):
      return np.asarray(predict(params, on_mesh(batch), step_params))

  def score_batch(batch):
    with mesh, nn.logical_axis_rules(rules):
      log_likelihood, tokens = score(params, on_mesh(batch))
    return np.stack([np.asarray(log_likelihood), np.asarray(tokens)], axis=-1)

  logger.info("Evaluating %s on %d %s examples%s...", evaluation.mixture_or_task_name,
              evaluation.num_examples, evaluation.split,
              f" (decoder steps with {decode_weights} weights)" if decode_weights else "")
  results = evaluation.evaluate(stoppable(predict_batch, should_stop),
                                stoppable(score_batch, should_stop), step=step)
  for task, values in results.items():
    # The confusion matrix's cells would drown the line; they stay in the results.
    logger.info("eval %s/%s: %s", task, evaluation.split,
                "  ".join(f"{k} {v:.3f}" for k, v in sorted(values.items())
                          if not k.startswith(CONFUSION_PREFIX)))
  return results
