"""Teacher-forced validation perplexity, cheap enough to run every few hundred steps.

The split's batches are built once (tokenized, padded, kept in host memory) and
scored with the model contract's `score_batch` at every evaluation:
perplexity = exp(-Σ log p / Σ target tokens), per task and over all of them (the
paper's definition, as `metrics.perplexity`). No decoding: the periodic
evaluation that early stopping and reduce-on-plateau read. Every host builds
the same batches and feeds them whole (they are small), so no per-host shard is
needed.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

import flax.linen as nn
import jax
import numpy as np
import seqio

from prosocial_jax.evaluation.evaluator import stoppable
from prosocial_jax.partitioning import batch_sharding

logger = logging.getLogger("prosocial_jax")


def _task_batches(task: seqio.Task, lengths: Mapping[str, int], batch_size: int, split: str,
                  max_examples: int | None) -> list[dict[str, np.ndarray]]:
  dataset = seqio.get_dataset(
      task.name, task_feature_lengths=dict(lengths), dataset_split=split, shuffle=False,
      num_epochs=1, feature_converter=seqio.EncDecFeatureConverter(pack=False), verbose=False)
  if max_examples:
    dataset = dataset.take(max_examples)
  rows = list(dataset.as_numpy_iterator())
  batches = []
  for start in range(0, len(rows), batch_size):
    chunk = rows[start:start + batch_size]
    # Rows of zeros fill the last batch: no target tokens, so they add nothing.
    chunk += [{k: np.zeros_like(v) for k, v in chunk[0].items()}] * (batch_size - len(chunk))
    batches.append({k: np.stack([row[k] for row in chunk]) for k in chunk[0]})
  return batches


class ValidationPerplexity:
  """Perplexity of the gold targets of a task's (or each task of a mixture's) split."""

  def __init__(self, mixture_or_task_name: str, task_feature_lengths: Mapping[str, int],
               batch_size: int, *, split: str = "validation", max_examples: int | None = None):
    provider = seqio.get_mixture_or_task(mixture_or_task_name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    self.split = split
    self.name = mixture_or_task_name
    self._batches = {}
    for task in tasks:
      if split not in task.splits:
        logger.info("%s has no %s split: not part of the validation perplexity.",
                    task.name, split)
        continue
      self._batches[task.name] = _task_batches(task, task_feature_lengths, batch_size, split,
                                               max_examples)
    if not any(self._batches.values()):
      raise ValueError(f"{mixture_or_task_name!r} has no examples in a {split!r} split: "
                       "nothing to compute a validation perplexity on.")

  @property
  def num_examples(self) -> int:
    return sum(int(np.sum(np.any(b["decoder_loss_weights"] > 0, axis=-1)))
               for batches in self._batches.values() for b in batches)

  def __call__(self, score_fn, params, mesh, rules, *, should_stop=None) -> dict[str, float]:
    """{"<task>/perplexity": ..., "perplexity": ..., "nll_per_token": ...} (all tasks).

    `score_fn(params, batch)` is the jitted `model.score_batch`; `should_stop()` is asked
    before every batch (`evaluator.stoppable`)."""
    score_fn = stoppable(score_fn, should_stop)
    sharding = batch_sharding(mesh, rules)
    results, total_ll, total_tokens = {}, 0.0, 0.0
    with mesh, nn.logical_axis_rules(rules):
      for task, batches in self._batches.items():
        task_ll, task_tokens = 0.0, 0.0
        for batch in batches:
          on_mesh = {k: jax.device_put(v, sharding) for k, v in batch.items()}
          log_likelihood, tokens = jax.device_get(score_fn(params, on_mesh))
          task_ll += float(np.sum(log_likelihood))
          task_tokens += float(np.sum(tokens))
        if len(self._batches) > 1 and task_tokens:
          results[f"{task}/perplexity"] = math.exp(-task_ll / task_tokens)
        total_ll, total_tokens = total_ll + task_ll, total_tokens + task_tokens
    nll = -total_ll / max(total_tokens, 1.0)
    results.update(perplexity=math.exp(nll), nll_per_token=nll)
    return results
