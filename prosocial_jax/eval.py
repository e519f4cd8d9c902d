"""Entry point: the paper's evaluation of one of our checkpoints, through SeqIO.

  python -m prosocial_jax.eval --model_dir=MODEL_DIR [--task=NAME] [--split=validation|test]
      [--step=N|latest|best] [--batch_size=N] [--max_examples=N] [--data_root=DIR|sample]
      [--inputs_length=N --targets_length=N] [--gin_file=F ...] [--gin.NAME=VALUE ...]

The model config and the vocabulary come from the checkpoint. The task (or mixture),
the feature lengths and the batch size default to the ones the run trained with (its
checkpoints record them; a converted checkpoint records none, so --task and the
lengths are then required). Predictions are greedy, with the same
`evaluation.run.evaluate` as the trainer's final and periodic evaluations, and every
metric function of the task (prosocial_jax/evaluation/metrics.py). It writes

  MODEL_DIR/eval/<task>-<split>-step<N>.json  the metrics of each task, its confusion
                                              matrix, the settings of BLEU and F1
  MODEL_DIR/eval/events.out.tfevents.*        TensorBoard: `<split>/<task>/<metric>` at step N
  MODEL_DIR/eval/<split>/                     SeqIO's logs: the metrics and every prediction
  MODEL_DIR/report/index.html, report.md      the report a person reads (metrics beside the
                                              paper's, plots, predictions per label; see
                                              evaluation/report.py), one per evaluation

The data root is --data_root (`sample`: the one shipped with the package), else
$PROSOCIAL_JAX_DATA, else ~/prosocial_jax_data. Gin files and bindings set the mesh
(`MeshShape.*`, gin/partitioning/*.gin), the axis rules and `evaluate_checkpoint.*`
(e.g. `decode_weights='int8'`). A bad input exits with status 2 and a message.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Mapping, Sequence

import gin

from prosocial_jax import gin_utils, host_memory, user_errors

logger = logging.getLogger("prosocial_jax")

SPLITS = ("validation", "test", "train")
# A converted checkpoint records no training batch size.
DEFAULT_BATCH_SIZE = 8


class EvalError(ValueError):
  """A bad argument or a checkpoint that cannot be evaluated as asked; the message says why."""


def _positive(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
  return value


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  """(the flags, the gin bindings of --gin.NAME=VALUE and --gin_bindings)."""
  parser = argparse.ArgumentParser(
      prog="python -m prosocial_jax.eval",
      description="Evaluate a checkpoint with the paper's metrics (SeqIO).")
  parser.add_argument("--model_dir", required=True, help="the run's MODEL_DIR (local or gs://)")
  parser.add_argument("--task", help="a SeqIO task or mixture (default: the one the run "
                                     "trained on)")
  parser.add_argument("--split", default="validation", choices=SPLITS)
  parser.add_argument("--step", default="latest",
                      help="a step number, 'latest' (default) or 'best' (best validation "
                           "perplexity recorded with a checkpoint)")
  parser.add_argument("--batch_size", type=_positive, help="default: the run's batch size")
  parser.add_argument("--max_examples", type=_positive,
                      help="evaluate the first N examples of each task (default: all)")
  parser.add_argument("--data_root", help="the raw corpora's root, or 'sample' for the "
                                          "shipped sample (default: $PROSOCIAL_JAX_DATA, "
                                          "else ~/prosocial_jax_data)")
  parser.add_argument("--inputs_length", type=_positive, help="default: the run's")
  parser.add_argument("--targets_length", type=_positive,
                      help="default: the run's; also the longest prediction")
  parser.add_argument("--gin_file", action="append", default=[])
  parser.add_argument("--gin_bindings", action="append", default=[])
  parser.add_argument("--gin_search_paths", default="")
  args, rest = parser.parse_known_args(list(argv))
  return args, gin_utils.gin_bindings(parser, args.gin_bindings, rest)


def _feature_lengths(recorded: Mapping[str, Any], inputs: int | None,
                     targets: int | None) -> dict[str, int]:
  lengths = {"inputs": inputs or recorded.get("inputs"),
             "targets": targets or recorded.get("targets")}
  missing = [k for k, v in lengths.items() if not v]
  if missing:
    raise EvalError("the checkpoint records no feature lengths (not trained here): pass "
                    + " and ".join(f"--{k}_length" for k in missing) + ".")
  return {k: int(v) for k, v in lengths.items()}


def _use_vocabulary(record: Mapping[str, Any]) -> None:
  """The tasks' vocabulary becomes the checkpoint's: ids must mean what they meant in
  training."""
  import tasks
  if not record:
    logger.warning("The checkpoint records no vocabulary: using the tasks' default "
                   "(gin, $PROSOCIAL_JAX_VOCAB, or the sample's).")
    return
  spec = record["path"] if record.get("kind", "sentencepiece") == "sentencepiece" else "byte"
  tasks.set_vocabulary(spec, extra_ids=record.get("extra_ids"))


def _restore_params(stored, model, lengths: Mapping[str, int], mesh, rules):
  """The checkpoint's parameters straight onto the mesh, laid out by their logical axes."""
  import flax.linen as nn
  import jax
  from prosocial_jax.checkpoints.manager import Checkpointer
  from prosocial_jax.partitioning import logical_to_sharding
  enc = jax.ShapeDtypeStruct((1, lengths["inputs"]), "int32")
  dec = jax.ShapeDtypeStruct((1, lengths["targets"]), "int32")
  boxed = jax.eval_shape(model.init, jax.random.key(0), {
      "encoder_input_tokens": enc, "decoder_input_tokens": dec, "decoder_target_tokens": dec})
  shardings = logical_to_sharding(nn.get_partition_spec(boxed), mesh, rules)
  target = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        nn.meta.unbox(boxed), shardings)
  checkpointer = Checkpointer(stored.model_dir, max_to_keep=None)
  try:
    return checkpointer.restore_params(stored.step, target)
  finally:
    checkpointer.close()


def _write(path: str, record: Mapping[str, Any],
           results: Mapping[str, Mapping[str, float]]) -> None:
  """The JSON record at `path` (whole or not at all), TensorBoard scalars beside it."""
  from prosocial_jax.evaluation.records import write_record
  from prosocial_jax.training.metrics import ScalarWriter
  write_record(path, record)
  board = ScalarWriter(os.path.dirname(path))
  try:
    for task, values in results.items():
      for metric, value in values.items():
        board.add_scalar(f"{record['split']}/{task}/{metric}", value, record["step"])
  finally:
    board.close()


@gin.configurable(denylist=["model_dir"])
def evaluate_checkpoint(model_dir: str, *, task: str | None = None, split: str = "validation",
                        step: str = "latest", batch_size: int | None = None,
                        max_examples: int | None = None, data_root: str | None = None,
                        inputs_length: int | None = None, targets_length: int | None = None,
                        decode_weights: str | None = None) -> tuple[str, dict[str, Any]]:
  """Evaluates MODEL_DIR's checkpoint `step` on `task`'s `split` (see the module
  docstring); returns (the JSON file written, its record)."""
  import jax
  import tasks
  from prosocial_jax import version
  from prosocial_jax.checkpoints.stored import CheckpointNotFoundError, open_checkpoint
  from prosocial_jax.data.data_root import sample_data_root
  from prosocial_jax.evaluation.evaluator import SeqioEvaluation
  from prosocial_jax.evaluation.run import evaluate
  from prosocial_jax.inference.model import EncoderDecoderModel
  from prosocial_jax.inference.packed_weights import WEIGHT_FORMATS
  from prosocial_jax.partitioning import batch_shards, create_mesh, logical_axis_rules

  if decode_weights is not None and decode_weights not in WEIGHT_FORMATS:
    raise EvalError(f"decode_weights must be one of {WEIGHT_FORMATS} or None, "
                    f"got {decode_weights!r}.")
  try:
    stored = open_checkpoint(model_dir, step)
  except CheckpointNotFoundError as error:
    if "://" not in model_dir and os.path.isfile(os.path.join(model_dir, "config.json")):
      raise EvalError(
          f"{error} It is a Hugging Face folder (an export?): convert it into a checkpoint "
          f"first, then evaluate that: python -m prosocial_jax.convert --source={model_dir} "
          "--output_dir=NEW_DIR (an export of ours keeps its task and lengths).") from None
    raise
  trained_on = stored.trained_on
  name = task or trained_on.get("mixture_or_task_name")
  if not name:
    raise EvalError(f"{stored.path} records no training task (a converted checkpoint?): "
                    "pass --task.")
  tasks.get_mixture_or_task(name)  # an unknown name: UnknownTaskError, naming the nearest
  lengths = _feature_lengths(trained_on.get("task_feature_lengths") or {}, inputs_length,
                             targets_length)
  batch_size = batch_size or int(trained_on.get("batch_size") or DEFAULT_BATCH_SIZE)
  mesh, rules = create_mesh(), logical_axis_rules()  # a misfit MeshShape: a UserError
  shards = batch_shards(mesh, rules)
  if batch_size % shards:
    raise EvalError(f"batch size {batch_size} does not split over the mesh's {shards} "
                    f"data x fsdp devices: pass --batch_size as a multiple of {shards}.")
  if data_root is not None:
    tasks.set_data_root(sample_data_root() if data_root == "sample" else data_root)
  _use_vocabulary(stored.vocabulary)

  model = EncoderDecoderModel(stored.config.runnable_on(jax.default_backend()))
  # Built before the parameters are read: bad data or a missing split fails in seconds.
  from prosocial_jax.evaluation.records import make_record, record_path, variant
  predictions = os.path.join(stored.model_dir, "eval", split + variant(max_examples,
                                                                       decode_weights))
  evaluation = SeqioEvaluation(name, lengths, batch_size, split=split,
                               max_examples=max_examples, log_dir=predictions)
  try:
    params = _restore_params(stored, model, lengths, mesh, rules)
    logger.info("Restored step %d of %s onto a %s mesh.", stored.step, stored.model_dir,
                dict(mesh.shape))
    results = evaluate(model, params, mesh, rules, evaluation, step=stored.step,
                       decode_weights=decode_weights)
    num_examples = evaluation.num_examples
  finally:
    evaluation.close()
  record = make_record(results, model_dir=stored.model_dir, step=stored.step,
                   mixture_or_task_name=name, split=split, num_examples=num_examples,
                   task_feature_lengths=lengths, batch_size=batch_size,
                   max_examples=max_examples, decode_weights=decode_weights,
                   predictions=predictions, code=version.code_record())
  path = record_path(stored.model_dir, name, split, stored.step, max_examples=max_examples,
                     decode_weights=decode_weights)
  if jax.process_index() == 0:
    _write(path, record, results)
  return path, record


def _user_errors() -> tuple[type[Exception], ...]:
  """Errors about the user's input: a message is enough, no traceback."""
  from prosocial_jax.checkpoints.stored import CheckpointNotFoundError
  from prosocial_jax.data.errors import DataFormatError, MissingDataError
  from prosocial_jax.evaluation.evaluator import NothingToEvaluateError
  return (EvalError, CheckpointNotFoundError, DataFormatError, MissingDataError,
          NothingToEvaluateError, FileNotFoundError)


def main(argv=None) -> None:
  args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
  from prosocial_jax.train import setup_logging
  setup_logging()
  # After logging is set up: these pull in TF, seqio and every gin configurable that
  # evaluate_checkpoint reaches, which must exist before gin parses (and locks) the config.
  import jax
  import tasks
  from prosocial_jax.checkpoints import stored
  from prosocial_jax.evaluation import run
  from prosocial_jax.partitioning import distributed
  del tasks, stored, run  # imported for their configurables only
  from prosocial_jax.training.input_pipeline import configure_tensorflow
  configure_tensorflow()
  given = {k: v for k, v in vars(args).items() if v is not None and k in (
      "task", "split", "step", "batch_size", "max_examples", "data_root", "inputs_length",
      "targets_length")}
  with user_errors.exit_on(_user_errors()):
    gin_utils.parse_gin(args.gin_file, bindings,
                        [p for p in args.gin_search_paths.split(",") if p])
    distributed.initialize_from_environment()
    if jax.process_index() != 0:  # one progress log per job; warnings and errors from all
      logger.setLevel(logging.WARNING)
    path, record = evaluate_checkpoint(args.model_dir, **given)
  if jax.process_index() == 0:
    from prosocial_jax.evaluation.records import write_report
    report = write_report(record["model_dir"], path)
    print(f"Evaluated step {record['step']} of {record['model_dir']} on "
          f"{record['mixture_or_task_name']}/{record['split']} ({record['num_examples']} "
          f"examples): {path}" + (f"; report: {report}" if report else ""))


if __name__ == "__main__":
  host_memory.reexec_with_hugepages()  # before JAX is imported
  main()
