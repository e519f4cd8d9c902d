"""The training job: set up (or resume), loop with actions, tear down.

Everything a run needs is an argument of `train`, bound by gin from the T5X
macro names (MODEL_DIR, MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, TRAIN_STEPS,
BATCH_SIZE, INITIAL_CHECKPOINT_PATH, ...); see gin/runs/train.gin for the list.
The loop is `loop.run`; what happens between steps is the actions of
`build_actions` (actions.py). Resuming takes the newest checkpoint that reads
and restores (`checkpoints/integrity.py`); SIGTERM saves and exits
(`preemption.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import os
from typing import Any, Mapping

import gin
import jax
import seqio

from prosocial_jax import version
from prosocial_jax.user_errors import UserError
from prosocial_jax.checkpoints.assets import record_vocabulary, write_text
from prosocial_jax.checkpoints.compatibility import param_shapes, vocabulary_record
from prosocial_jax.checkpoints.integrity import ResumeSearch, remove_unfinished_saves
from prosocial_jax.checkpoints.manager import Checkpointer
from prosocial_jax.evaluation import records
from prosocial_jax.evaluation.evaluator import SeqioEvaluation, eval_log_dir
from prosocial_jax.evaluation.perplexity import ValidationPerplexity
from prosocial_jax.evaluation.run import evaluate
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.inference.packed_weights import WEIGHT_FORMATS
from prosocial_jax.models import precision
from prosocial_jax.models.registry import config_to_dict
from prosocial_jax.partitioning import (MeshShape, batch_shards, batch_sharding, create_mesh,
                                        logical_axis_rules)
from prosocial_jax.training import actions as actions_lib
from prosocial_jax.training import flops, input_pipeline, loop as loop_lib, preemption, profiling
from prosocial_jax.training.initial_checkpoint import load_initial_params
from prosocial_jax.training.metrics import MetricsWriter
from prosocial_jax.training.optimizers import as_optimizer
from prosocial_jax.training.resume import InputSettings, open_input_stream
from prosocial_jax.training.schedules import ReduceOnPlateau
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import (abstract_target, init_train_state,
                                                param_count, replicated, state_shardings)

logger = logging.getLogger("prosocial_jax")


class SettingError(UserError, ValueError):
  """A `train.*` setting or macro that cannot work as given; the message names it and
  what would (the command line shows the message alone, no traceback)."""


@dataclasses.dataclass
class TrainResult:
  step: int
  train_metrics: dict[str, float]
  eval_metrics: dict[str, dict[str, float]]
  stop_reason: str | None = None


def _check_vocab_fits(mixture_or_task_name: str, model_vocab_size: int) -> None:
  task = seqio.get_mixture_or_task(mixture_or_task_name)
  for name, feature in task.output_features.items():
    size = feature.vocabulary.vocab_size
    if size > model_vocab_size:
      raise SettingError(
          f"The {name!r} vocabulary of {mixture_or_task_name!r} has {size} ids but "
          f"the model's vocab_size is {model_vocab_size}: set the model's "
          f"vocab_size to at least {size} (a multiple of 128 is fastest).")


def _vocabulary(mixture_or_task_name: str):
  return seqio.get_mixture_or_task(mixture_or_task_name).output_features["targets"].vocabulary


def _dummy_batch(batch_size: int, lengths: Mapping[str, int]) -> dict[str, jax.ShapeDtypeStruct]:
  enc = jax.ShapeDtypeStruct((batch_size, lengths["inputs"]), "int32")
  dec = jax.ShapeDtypeStruct((batch_size, lengths["targets"]), "int32")
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec,
          "decoder_target_tokens": dec}


def absolute_model_dir(model_dir: str) -> str:
  """Orbax needs absolute paths; bucket URLs (gs://...) are left as they are."""
  return model_dir if "://" in model_dir else os.path.abspath(os.path.expanduser(model_dir))


def _use_tasks_module(module_name: str | None, data_root: str | None) -> None:
  if not module_name:
    return
  tasks_module = importlib.import_module(module_name)
  if data_root is not None:
    if not hasattr(tasks_module, "set_data_root"):
      raise SettingError(f"DATA_ROOT is set but the tasks module {module_name!r} has no "
                       "set_data_root(path) to receive it; unset DATA_ROOT or add it.")
    tasks_module.set_data_root(data_root)


def _check_settings(*, eval_decode_weights, eval_every, early_stopping_patience, keep_best,
                    reduce_on_plateau, microbatches, batch_size, on_nonfinite) -> None:
  if on_nonfinite not in loop_lib.NONFINITE_POLICIES:
    raise SettingError(f"train.on_nonfinite must be one of {loop_lib.NONFINITE_POLICIES}, "
                     f"got {on_nonfinite!r}")
  if eval_decode_weights is not None and eval_decode_weights not in WEIGHT_FORMATS:
    raise SettingError(f"train.eval_decode_weights must be one of {WEIGHT_FORMATS} or None, "
                     f"got {eval_decode_weights!r}")
  needs_eval = {"train.early_stopping_patience": early_stopping_patience,
                "train.keep_best": keep_best, "train.reduce_on_plateau": reduce_on_plateau}
  for name, value in needs_eval.items():
    if value and not eval_every:
      raise SettingError(f"{name} acts on the periodic validation perplexity: set "
                       "train.eval_every too.")
  if microbatches < 1 or batch_size % microbatches:
    raise SettingError(f"train.microbatches={microbatches} must be >= 1 and divide "
                     f"BATCH_SIZE={batch_size}.")


def _check_batches_split(mesh, rules, *, batch_size, eval_batch_size) -> None:
  """Every batch must split evenly over the mesh's batch shards (data x fsdp): said
  before anything is compiled, not as a sharding error after the first steps."""
  shards = batch_shards(mesh, rules)
  sizes = {"BATCH_SIZE": batch_size, "train.eval_batch_size": eval_batch_size}
  for name, size in sizes.items():
    if size is not None and size % shards:
      raise SettingError(
          f"{name}={size} does not split over the mesh's {shards} batch shards "
          f"({dict(mesh.shape)}, the batch split over data x fsdp): make it a multiple of "
          f"{shards}, or set MeshShape.data / .fsdp for fewer shards.")


@gin.configurable(denylist=["resume"])
def train(*,
          model_dir: str = gin.REQUIRED,
          mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
          train_steps: int = gin.REQUIRED,
          batch_size: int = gin.REQUIRED,
          model_config: Any = gin.REQUIRED,
          optimizer=gin.REQUIRED,
          initial_checkpoint_path: str | None = None,
          initial_checkpoint_format: str = "auto",
          mixture_or_task_module: str | None = "tasks",
          data_root: str | None = None,
          seed: int = 0,
          pack: bool = False,
          mesh_shape: MeshShape | None = None,
          microbatches: int = 1,
          z_loss: float = 0.0,
          label_smoothing: float = 0.0,
          log_every: int = 50,
          checkpoint_every: int = 1000,
          keep_checkpoints: int | None = 3,
          keep_best: bool = False,
          eval_every: int | None = None,
          eval_mixture_or_task_name: str | None = None,
          eval_split: str = "validation",
          eval_batch_size: int | None = None,
          eval_max_examples: int | None = None,
          eval_decode: bool = False,
          early_stopping_patience: int | None = None,
          reduce_on_plateau: ReduceOnPlateau | None = None,
          eval_at_end: bool = True,
          eval_decode_weights: str | None = None,
          on_input_change: str = "refuse",
          on_nonfinite: str = "stop",
          peak_flops_per_device: float | None = None,
          profile_steps: tuple[int, int] | None = None,
          resume: bool = True) -> TrainResult:
  """Trains `model_config` on a SeqIO task or mixture; resumes from MODEL_DIR.

  Resuming takes the newest checkpoint of MODEL_DIR whose metadata and state read
  back and match the model; newer unusable ones are named with the reason and
  renamed `checkpoint_<n>.unusable`, unfinished saves are removed; with none
  usable the run stops listing them. SIGTERM while training finishes the step,
  saves it and exits with status 143.

  on_nonfinite: what a NaN/inf loss or gradient norm does. 'stop' (default): the
    run stops, naming the step, the metric and the last good checkpoint, and saves
    nothing. 'skip': that step keeps the previous parameters and optimizer state
    (its batch is passed over), the log says how many were skipped and
    metrics.jsonl records `skipped_updates`; 25 skipped in a row stop the run.
    Either way no non-finite state is ever saved.
  profile_steps: (first, count) traces those steps with jax.profiler into
    MODEL_DIR/profile (TensorBoard's profile plugin; `perfetto_trace.json.gz` when
    MODEL_DIR is local) and logs where their time went (`profiling.py`).
  """
  _check_settings(eval_decode_weights=eval_decode_weights, eval_every=eval_every,
                  early_stopping_patience=early_stopping_patience, keep_best=keep_best,
                  reduce_on_plateau=reduce_on_plateau, microbatches=microbatches,
                  batch_size=batch_size, on_nonfinite=on_nonfinite)
  profiling.check_profile_steps(profile_steps)
  input_pipeline.configure_tensorflow()
  if jax.process_index() != 0:  # one progress log per job; warnings and errors from all
    logger.setLevel(logging.WARNING)
  logger.info("%s", version.describe())
  model_dir = absolute_model_dir(model_dir)
  _use_tasks_module(mixture_or_task_module, data_root)
  _check_vocab_fits(mixture_or_task_name, model_config.vocab_size)
  eval_name = eval_mixture_or_task_name or mixture_or_task_name
  eval_batch_size = eval_batch_size or batch_size

  # Set up: mesh, model, shapes, checkpoint compatibility, input, evaluations.
  rules = logical_axis_rules()
  mesh = create_mesh(mesh_shape)
  _check_batches_split(mesh, rules, batch_size=batch_size,
                       eval_batch_size=eval_batch_size if eval_every or eval_at_end else None)
  model = EncoderDecoderModel(model_config, z_loss=z_loss, label_smoothing=label_smoothing)
  hint = precision.cpu_matmul_hint(getattr(model_config, "matmul", ""),
                                   getattr(model_config, "dtype", ""), jax.default_backend())
  if hint:
    logger.info(hint)
  optimizer = as_optimizer(optimizer)
  dummy = _dummy_batch(batch_size, task_feature_lengths)
  abstract_state, shardings = state_shardings(model, optimizer, dummy, mesh, rules)
  vocabulary = vocabulary_record(_vocabulary(mixture_or_task_name))
  meta = {"model_config": config_to_dict(model_config),
          "param_shapes": param_shapes(abstract_state.params),
          "vocabulary": vocabulary,
          "code": version.code_record()}  # which code wrote the checkpoint

  checkpointer = Checkpointer(model_dir, max_to_keep=keep_checkpoints, keep_best=keep_best)
  target = abstract_target(abstract_state, shardings)
  settings = InputSettings(mixture_or_task_name, dict(task_feature_lengths), batch_size, seed,
                           pack)
  search = None
  if resume:
    remove_unfinished_saves(model_dir)
    search = ResumeSearch(checkpointer, meta)
  while True:  # the newest checkpoint whose metadata, input position and state all read
    latest, saved_meta = search.next_candidate() if search else (None, {})
    start_step = latest or 0
    stopped = saved_meta.get("loop", {}).get("stop_reason")
    batches = None
    if start_step < train_steps and not stopped:
      # Opened before the state is restored or initialised: bad data fails in seconds.
      batches, meta["input"] = open_input_stream(
          settings, checkpointer=checkpointer, step=latest,
          saved_identity=saved_meta.get("input"), on_input_change=on_input_change)
    if latest is None:
      break
    state = search.restore(latest, target)
    if state is not None:
      break
  if latest is not None:
    search.finish(latest)
  end_evaluation = None
  if eval_at_end:
    end_evaluation = SeqioEvaluation(eval_name, task_feature_lengths, eval_batch_size,
                                     split=eval_split, log_dir=eval_log_dir(model_dir))
  perplexity = None
  if eval_every and batches is not None:
    perplexity = ValidationPerplexity(eval_name, task_feature_lengths, eval_batch_size,
                                      split=eval_split, max_examples=eval_max_examples)

  if latest is not None:
    logger.info("Resumed from %s at step %d.", model_dir, latest)
    if initial_checkpoint_path:  # it seeded this run's step 0; resuming takes MODEL_DIR's
      logger.info("INITIAL_CHECKPOINT_PATH (%s) is not read: MODEL_DIR holds this run's "
                  "checkpoints, and a run resumes from its own.", initial_checkpoint_path)
  else:
    state = init_train_state(model, optimizer, dummy, jax.random.key(seed), mesh, rules)
    if initial_checkpoint_path:
      params = load_initial_params(initial_checkpoint_path, meta["param_shapes"],
                                   target.params, format=initial_checkpoint_format,
                                   model_config=model_config, vocabulary=vocabulary)
      state = state.replace(params=params)
    logger.info("Initialised a new model: %s parameters on a %s mesh.",
                f"{param_count(state.params):,}", dict(mesh.shape))
    if "source" in vocabulary and jax.process_index() == 0:
      record_vocabulary(model_dir, vocabulary["source"])
  if jax.process_index() == 0:
    write_text(model_dir, "config.gin", gin.config_str())

  writer = MetricsWriter(model_dir, start_step)
  loop = None
  if batches is not None:
    train_step = jax.jit(make_train_step(model, optimizer, microbatches=microbatches,
                                         scale_updates=reduce_on_plateau is not None,
                                         skip_nonfinite=on_nonfinite == "skip"),
                         in_shardings=(shardings, batch_sharding(mesh, rules),
                                       replicated(mesh), replicated(mesh)),
                         out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    loop = loop_lib.Loop(
        model=model, state=state, step=start_step, start_step=start_step,
        train_steps=train_steps, mesh=mesh, rules=rules, train_step=train_step,
        batches=batches, data_sharding=batch_sharding(mesh, rules),
        dropout_rng=jax.random.key(seed + 1), checkpointer=checkpointer, meta=meta,
        writer=writer, model_dir=model_dir, on_nonfinite=on_nonfinite, last_saved_step=latest)
    actions = build_actions(
        loop, optimizer=optimizer, log_every=log_every, checkpoint_every=checkpoint_every,
        keep_best=keep_best, eval_every=eval_every, perplexity=perplexity,
        decode=(functools.partial(_decode_metrics, eval_name, task_feature_lengths,
                                  eval_batch_size, eval_split, eval_max_examples)
                if eval_decode else None),
        early_stopping_patience=early_stopping_patience, reduce_on_plateau=reduce_on_plateau,
        flops_per_step=flops.train_step_flops(model_config, batch_size,
                                              task_feature_lengths["inputs"],
                                              task_feature_lengths["targets"]),
        peak_flops_per_device=peak_flops_per_device)
    if profile_steps:  # first: its trace stops before the other actions of its last step
      actions.insert(0, profiling.Profile(*profile_steps, f"{model_dir.rstrip('/')}/profile"))
    for action in actions:
      if action.name in saved_meta.get("loop", {}):
        action.load_state_dict(saved_meta["loop"][action.name])
    loop.lr_scale = float(saved_meta.get("loop", {}).get("lr_scale", 1.0))
    logger.info("Training %s from step %d to %d (batch %d, lengths %s).", mixture_or_task_name,
                start_step, train_steps, batch_size, dict(task_feature_lengths))
    with preemption.PreemptionWatch() as watch:
      try:
        loop_lib.run(loop, actions, preemption=watch)
      finally:  # a failing run still completes the saves it started (its last good state)
        checkpointer.wait_until_finished()
    state = loop.state
    if jax.process_index() == 0:
      write_text(model_dir, "config.gin", gin.operative_config_str())
    if loop.preempted and loop.step < train_steps and not loop.stop_reason:
      writer.close()
      checkpointer.close()
      saved = (f"saved {model_dir.rstrip('/')}/checkpoint_{loop.last_saved_step}"
               if loop.last_saved_step is not None else "had nothing to save")
      logger.warning("%s received: stopped after step %d and %s; exiting with status %d. "
                     "Run the same command to resume.", loop.preempted, loop.step, saved,
                     preemption.EXIT_STATUS)
      raise SystemExit(preemption.EXIT_STATUS)
  elif stopped:
    logger.info("The run in MODEL_DIR stopped at step %d (%s): nothing to train.",
                start_step, stopped)
  else:
    logger.info("MODEL_DIR already holds step %d (TRAIN_STEPS=%d): nothing to train.",
                start_step, train_steps)
  checkpointer.wait_until_finished()

  # Tear down: the final SeqIO evaluation, then close everything.
  final_step = loop.step if loop is not None else start_step
  eval_metrics = {}
  periodic = next((a for a in actions if isinstance(a, actions_lib.Evaluate)), None) if (
      loop is not None) else None
  if (end_evaluation is not None and periodic is not None and eval_max_examples is None
      and eval_decode_weights is None and periodic.last_decode is not None
      and periodic.last_decode[0] == final_step):
    # The last periodic evaluation was this one already (same step, task, split, whole
    # split, plain weights), recorded and logged: not run twice.
    eval_metrics = periodic.last_decode[1]
    logger.info("Step %d was evaluated by the periodic evaluation just before: its results "
                "stand as the final evaluation.", final_step)
    end_evaluation.close()
  elif end_evaluation is not None:
    eval_metrics = evaluate(model, state.params, mesh, rules, end_evaluation, step=final_step,
                            decode_weights=eval_decode_weights)
    _record_and_report(model_dir, end_evaluation, final_step, eval_metrics,
                       eval_decode_weights)
    end_evaluation.close()
    for task, values in eval_metrics.items():
      writer.write(final_step, {f"eval/{task}/{k}": v for k, v in values.items()})
  writer.close()
  checkpointer.close()
  return TrainResult(step=int(jax.device_get(state.step)),
                     train_metrics=loop.last_metrics if loop is not None else {},
                     eval_metrics=eval_metrics,
                     stop_reason=loop.stop_reason if loop is not None else stopped)


def _decode_metrics(eval_name, lengths, batch_size, split, max_examples, loop) -> dict:
  """The SeqIO evaluation (predictions and scores) of a periodic evaluation, on the
  same first `max_examples` per task as its perplexity."""
  evaluation = SeqioEvaluation(eval_name, lengths, batch_size, split=split,
                               max_examples=max_examples, log_dir=eval_log_dir(loop.model_dir))
  try:
    results = evaluate(loop.model, loop.state.params, loop.mesh, loop.rules, evaluation,
                       step=loop.step, should_stop=loop.asked_to_stop)
    _record_and_report(loop.model_dir, evaluation, loop.step, results)
  finally:
    evaluation.close()
  return results


def _record_and_report(model_dir: str, evaluation: SeqioEvaluation, step: int, results,
                       decode_weights: str | None = None) -> None:
  """The evaluation's JSON record and report, as `python -m prosocial_jax.eval` writes them."""
  if jax.process_index() != 0:
    return
  path = records.record_path(model_dir, evaluation.mixture_or_task_name, evaluation.split, step,
                             max_examples=evaluation.max_examples,
                             decode_weights=decode_weights)
  records.write_record(path, records.make_record(
      results, model_dir=model_dir, step=int(step),
      mixture_or_task_name=evaluation.mixture_or_task_name, split=evaluation.split,
      num_examples=evaluation.num_examples,
      task_feature_lengths=evaluation.task_feature_lengths,
      batch_size=evaluation.batch_size, max_examples=evaluation.max_examples,
      decode_weights=decode_weights, predictions=eval_log_dir(model_dir),
      code=version.code_record()))
  report = records.write_report(model_dir, path)
  logger.info("Evaluation of step %d recorded in %s%s.", step, path,
              f"; report: {report}" if report else "")


def build_actions(loop, *, optimizer, log_every, checkpoint_every, keep_best, eval_every,
                  perplexity, decode, early_stopping_patience, reduce_on_plateau,
                  flops_per_step, peak_flops_per_device) -> list[loop_lib.Action]:
  """The run's actions, in the order they run after a step."""
  peak = peak_flops_per_device or flops.peak_flops_per_device(jax.devices()[0].device_kind,
                                                              loop.model.config.dtype)
  actions: list[loop_lib.Action] = [actions_lib.LogMetrics(
      log_every, flops_per_step=flops_per_step,
      peak_flops=peak * jax.device_count() if peak else None)]
  if eval_every:
    actions.append(actions_lib.Evaluate(eval_every, perplexity, decode=decode))
  if reduce_on_plateau is not None:
    actions.append(actions_lib.PlateauSchedule(reduce_on_plateau, optimizer.learning_rate))
  if early_stopping_patience:
    actions.append(actions_lib.EarlyStopping(early_stopping_patience))
  actions.append(actions_lib.SaveCheckpoint(checkpoint_every, actions,
                                            at_evaluations=keep_best))
  return actions
