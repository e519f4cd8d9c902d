"""The training job: set up (or resume), train, checkpoint, evaluate.

Everything a run needs is an argument of `train`, bound by gin from the T5X
macro names (MODEL_DIR, MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, TRAIN_STEPS,
BATCH_SIZE, ...); see gin/runs/train.gin for the full list.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from typing import Any, Mapping

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import seqio

from prosocial_jax import version
from prosocial_jax.checkpoints.assets import record_vocabulary, vocabulary_record, write_text
from prosocial_jax.checkpoints.manager import Checkpointer, check_compatible, param_shapes
from prosocial_jax.evaluation.evaluator import SeqioEvaluation, eval_log_dir
from prosocial_jax.evaluation.run import evaluate
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.inference.packed_weights import WEIGHT_FORMATS
from prosocial_jax.models.registry import config_to_dict
from prosocial_jax.partitioning import (MeshShape, batch_sharding, create_mesh,
                                        logical_axis_rules)
from prosocial_jax.training import input_pipeline
from prosocial_jax.training.resume import InputSettings, open_input_stream
from prosocial_jax.training.progress import Progress, ScalarWriter, count_tokens
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import (abstract_target, init_train_state,
                                                param_count, replicated,
                                                state_shardings)

logger = logging.getLogger("prosocial_jax")


@dataclasses.dataclass
class TrainResult:
  step: int
  train_metrics: dict[str, float]
  eval_metrics: dict[str, dict[str, float]]


def _vocabulary_path(mixture_or_task_name: str) -> str | None:
  task = seqio.get_mixture_or_task(mixture_or_task_name)
  vocab = task.output_features["targets"].vocabulary
  return getattr(vocab, "sentencepiece_model_file", None)


def _check_vocab_fits(mixture_or_task_name: str, model_vocab_size: int) -> None:
  task = seqio.get_mixture_or_task(mixture_or_task_name)
  for name, feature in task.output_features.items():
    size = feature.vocabulary.vocab_size
    if size > model_vocab_size:
      raise ValueError(
          f"The {name!r} vocabulary of {mixture_or_task_name!r} has {size} ids but "
          f"the model's vocab_size is {model_vocab_size}: set the model's "
          f"vocab_size to at least {size} (a multiple of 128 is fastest).")


def _dummy_batch(batch_size: int, lengths: Mapping[str, int]) -> dict[str, jax.Array]:
  enc = jax.ShapeDtypeStruct((batch_size, lengths["inputs"]), jnp.int32)
  dec = jax.ShapeDtypeStruct((batch_size, lengths["targets"]), jnp.int32)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec,
          "decoder_target_tokens": dec}


def absolute_model_dir(model_dir: str) -> str:
  """Orbax needs absolute paths; bucket URLs (gs://...) are left as they are."""
  return model_dir if "://" in model_dir else os.path.abspath(os.path.expanduser(model_dir))


@gin.configurable(denylist=["resume"])
def train(*,
          model_dir: str = gin.REQUIRED,
          mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
          train_steps: int = gin.REQUIRED,
          batch_size: int = gin.REQUIRED,
          model_config: Any = gin.REQUIRED,
          optimizer=gin.REQUIRED,
          mixture_or_task_module: str | None = "tasks",
          data_root: str | None = None,
          seed: int = 0,
          pack: bool = False,
          mesh_shape: MeshShape | None = None,
          checkpoint_every: int = 1000,
          keep_checkpoints: int | None = 3,
          log_every: int = 50,
          z_loss: float = 0.0,
          label_smoothing: float = 0.0,
          learning_rate_fn=None,
          eval_at_end: bool = True,
          eval_split: str = "validation",
          eval_batch_size: int | None = None,
          eval_decode_weights: str | None = None,
          on_input_change: str = "refuse",
          resume: bool = True) -> TrainResult:
  """Trains `model_config` on a SeqIO task or mixture; resumes from MODEL_DIR."""
  if eval_decode_weights is not None and eval_decode_weights not in WEIGHT_FORMATS:
    raise ValueError(f"train.eval_decode_weights must be one of {WEIGHT_FORMATS} or None, "
                     f"got {eval_decode_weights!r}")
  input_pipeline.configure_tensorflow()
  logger.info("%s", version.describe())
  model_dir = absolute_model_dir(model_dir)
  if mixture_or_task_module:
    tasks_module = importlib.import_module(mixture_or_task_module)
    if data_root is not None:
      if not hasattr(tasks_module, "set_data_root"):
        raise ValueError(f"DATA_ROOT is set but the tasks module {mixture_or_task_module!r} "
                         "has no set_data_root(path) to receive it; unset DATA_ROOT or add it.")
      tasks_module.set_data_root(data_root)
  _check_vocab_fits(mixture_or_task_name, model_config.vocab_size)

  rules = logical_axis_rules()
  mesh = create_mesh(mesh_shape)
  model = EncoderDecoderModel(model_config, z_loss=z_loss, label_smoothing=label_smoothing)
  dummy = _dummy_batch(batch_size, task_feature_lengths)
  abstract_state, shardings = state_shardings(model, optimizer, dummy, mesh, rules)
  data_sharding = batch_sharding(mesh, rules)

  vocab_path = _vocabulary_path(mixture_or_task_name)
  meta = {
      "model_config": config_to_dict(model_config),
      "param_shapes": param_shapes(abstract_state.params),
      "vocabulary": vocabulary_record(vocab_path) if vocab_path else {},
      "code": version.code_record(),  # which code wrote the checkpoint
  }
  input_settings = InputSettings(mixture_or_task_name, dict(task_feature_lengths),
                                 batch_size, seed, pack)

  checkpointer = Checkpointer(model_dir, max_to_keep=keep_checkpoints)
  latest = checkpointer.latest_step() if resume else None
  saved_meta = checkpointer.read_meta(latest) if latest is not None else {}
  if latest is not None:
    check_compatible(saved_meta, meta, model_dir=model_dir, step=latest)
  start_step = latest or 0
  batches = None
  if start_step < train_steps:
    # Built before the model so that bad data fails in seconds, not after init.
    batches, meta["input"] = open_input_stream(
        input_settings, checkpointer=checkpointer, step=latest,
        saved_identity=saved_meta.get("input"), on_input_change=on_input_change)

  evaluation = None
  if eval_at_end:
    evaluation = SeqioEvaluation(mixture_or_task_name, task_feature_lengths,
                                 eval_batch_size or batch_size, split=eval_split,
                                 log_dir=eval_log_dir(model_dir))

  if latest is not None:
    state = checkpointer.restore(latest, abstract_target(abstract_state, shardings))
    logger.info("Resumed from %s at step %d.", model_dir, latest)
  else:
    state = init_train_state(model, optimizer, dummy, jax.random.key(seed), mesh, rules)
    logger.info("Initialised a new model: %s parameters on a %s mesh.",
                f"{param_count(state.params):,}", dict(mesh.shape))
    if vocab_path:
      record_vocabulary(model_dir, vocab_path)
  write_text(model_dir, "config.gin", gin.config_str())

  train_step = jax.jit(
      make_train_step(model, optimizer, learning_rate_fn=learning_rate_fn),
      in_shardings=(shardings, data_sharding, replicated(mesh)),
      out_shardings=(shardings, replicated(mesh)),
      donate_argnums=(0,))
  dropout_rng = jax.random.key(seed + 1)

  writer = ScalarWriter(os.path.join(model_dir, "train"))
  last_metrics: dict[str, float] = {}
  if batches is not None:
    progress = Progress(train_steps, start_step)
    logger.info("Training %s from step %d to %d (batch %d, lengths %s).",
                mixture_or_task_name, start_step, train_steps, batch_size,
                dict(task_feature_lengths))
    with mesh, nn.logical_axis_rules(rules):
      for step in range(start_step + 1, train_steps + 1):
        host_batch = next(batches)
        progress.add_tokens(count_tokens(host_batch))
        state, metrics = train_step(
            state, input_pipeline.to_global_arrays(host_batch, data_sharding), dropout_rng)
        if step % log_every == 0 or step == train_steps:
          last_metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
          if not np.isfinite(last_metrics["loss"]):
            raise FloatingPointError(f"Loss became {last_metrics['loss']} at step {step}.")
          writer.write(step, progress.report(step, last_metrics))
        if step % checkpoint_every == 0 or step == train_steps:
          checkpointer.save(step, state, meta, input_iterator=batches)
    write_text(model_dir, "config.gin", gin.operative_config_str())
  else:
    logger.info("MODEL_DIR already holds step %d (TRAIN_STEPS=%d): nothing to train.",
                start_step, train_steps)
  checkpointer.wait_until_finished()

  eval_metrics = {}
  if evaluation is not None:
    eval_metrics = evaluate(model, state.params, mesh, rules, evaluation,
                            step=max(start_step, train_steps),
                            decode_weights=eval_decode_weights)
    evaluation.close()
    for task, values in eval_metrics.items():
      writer.write(max(start_step, train_steps), {f"eval/{task}/{k}": v for k, v in values.items()})
  writer.close()
  checkpointer.close()
  return TrainResult(step=int(jax.device_get(state.step)), train_metrics=last_metrics,
                     eval_metrics=eval_metrics)
