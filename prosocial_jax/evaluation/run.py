"""Evaluate a model's parameters with SeqIO: greedy predictions + gold scores."""

from __future__ import annotations

import functools
import logging

import flax.linen as nn
import jax
import numpy as np

from prosocial_jax.evaluation.evaluator import SeqioEvaluation
from prosocial_jax.models.decoding import greedy_decode
from prosocial_jax.models.packed import pack_params
from prosocial_jax.partitioning import batch_sharding
from prosocial_jax.training.steps import make_score_step

logger = logging.getLogger("prosocial_jax")


def evaluate(module, params, mesh, rules, evaluation: SeqioEvaluation, *, step=None,
             decode_weights=None):
  """SeqIO evaluation: greedy predictions and gold-target scores.

  `evaluation` is built by the caller (it reads and caches the split), so a
  training job can build it before training and fail early on bad eval data.
  `decode_weights` ("float32", "bfloat16" or "int8"; None: the plain weights)
  packs the decoder-step weights once for faster greedy decoding (see
  `models.packed`); scores always use the plain weights.
  """
  task_feature_lengths = evaluation.task_feature_lengths
  data_sharding = batch_sharding(mesh, rules)
  max_decode_length = task_feature_lengths["targets"]
  decode = jax.jit(functools.partial(greedy_decode, module,
                                     max_decode_length=max_decode_length))
  score = jax.jit(make_score_step(module))
  step_params = None
  if decode_weights is not None:
    with mesh, nn.logical_axis_rules(rules):
      step_params = jax.jit(functools.partial(
          pack_params, weights=decode_weights,
          tied_output_embedding=module.tied_output_embedding))(params)

  def on_mesh(batch):
    return {k: jax.device_put(v, data_sharding) for k, v in batch.items()}

  def predict_batch(batch):
    with mesh, nn.logical_axis_rules(rules):
      return np.asarray(decode(params, on_mesh(batch)["encoder_input_tokens"],
                               step_params=step_params))

  def score_batch(batch):
    with mesh, nn.logical_axis_rules(rules):
      log_likelihood, tokens = score(params, on_mesh(batch))
    return np.stack([np.asarray(log_likelihood), np.asarray(tokens)], axis=-1)

  logger.info("Evaluating %s on %d %s examples%s...", evaluation.mixture_or_task_name,
              evaluation.num_examples, evaluation.split,
              f" (decoder steps with {decode_weights} weights)" if decode_weights else "")
  results = evaluation.evaluate(predict_batch, score_batch, step=step)
  evaluation.close()
  for task, values in results.items():
    logger.info("eval %s/%s: %s", task, evaluation.split,
                "  ".join(f"{k} {v:.3f}" for k, v in sorted(values.items())))
  return results
