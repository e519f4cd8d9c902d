"""Entry point: `python -m prosocial_jax.train --gin_file=... --gin.MODEL_DIR="'...'"`."""

from __future__ import annotations

import logging
import os
import sys
import traceback

from prosocial_jax import gin_utils, host_memory, user_errors


class _DropGinProbes(logging.Filter):
  # gin reports every search-path prefix it tries for an include as an error
  # ("Path not found: ..."), even when a later prefix finds the file.
  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Path not found")


def setup_logging() -> None:
  logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                      format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
  for handler in logging.getLogger().handlers:
    handler.addFilter(_DropGinProbes())
  logging.getLogger("prosocial_jax").setLevel(logging.INFO)
  try:
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
  except ImportError:
    pass


def _user_errors() -> tuple[type[Exception], ...]:
  """Errors about the user's data or MODEL_DIR: a message is enough, no traceback."""
  from prosocial_jax.checkpoints.compatibility import CheckpointMismatchError
  from prosocial_jax.checkpoints.importers.base import CheckpointImportError
  from prosocial_jax.data.errors import DataFormatError, MissingDataError
  from prosocial_jax.training.initial_checkpoint import InitialCheckpointError
  from prosocial_jax.training.loop import NonFiniteError
  from prosocial_jax.training.resume import InputChangedError
  return (DataFormatError, MissingDataError, CheckpointMismatchError, InputChangedError,
          InitialCheckpointError, CheckpointImportError, NonFiniteError)


def _check_task_name() -> None:
  """An unknown MIXTURE_OR_TASK_NAME fails here, naming the nearest registered ones."""
  import gin
  import tasks
  try:
    name = gin.query_parameter("%MIXTURE_OR_TASK_NAME")
  except ValueError:  # a config without the macro: the trainer's own checks apply
    return
  if isinstance(name, str):
    tasks.get_mixture_or_task(name)


def _train(trainer) -> None:
  with user_errors.exit_on(_user_errors()):
    try:
      trainer.train()
    except RuntimeError as error:  # gin: a configurable called without a required value
      explained = gin_utils.missing_bindings(error)
      if explained is None:
        raise
      raise explained from None


def _exit_now(status: int) -> None:
  """Ends a failed process of a multi-process job at once.

  A normal exit would wait at JAX's shutdown barrier for the other processes,
  which are themselves waiting for this one in a collective or a checkpoint
  barrier: the job would hang for minutes. Gone at once, this process is missed
  by JAX's coordination service, which then stops every process of the job.
  """
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)


def main(argv=None) -> None:
  gin_files, bindings, search_paths = gin_utils.parse_args(
      sys.argv[1:] if argv is None else argv, entry="train")
  setup_logging()
  logging.getLogger("prosocial_jax").info(host_memory.describe())
  # Import after logging is set up: these pull in TF, seqio and the gin configurables.
  import jax
  from prosocial_jax.training import trainer  # noqa: F401
  from prosocial_jax import models  # noqa: F401  (registers model configurables)
  from prosocial_jax.partitioning import distributed
  with user_errors.exit_on():  # a gin typo, a missing gin file, an unknown task: a message
    gin_utils.parse_gin(gin_files, bindings, search_paths)
    _check_task_name()
  # Before any JAX computation; gin may hold the coordinator settings.
  distributed.initialize_from_environment()
  try:
    _train(trainer)
  except BaseException as error:
    if jax.process_count() == 1:
      raise
    if isinstance(error, SystemExit):
      _exit_now(error.code if isinstance(error.code, int) else 1)
    traceback.print_exc()
    _exit_now(1)


if __name__ == "__main__":
  host_memory.reexec_with_hugepages()  # before JAX is imported
  main()
