"""Entry point: `python -m prosocial_jax.train --gin_file=... --gin.MODEL_DIR="'...'"`."""

from __future__ import annotations

import logging
import sys

from prosocial_jax import gin_utils


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


def main(argv=None) -> None:
  gin_files, bindings, search_paths = gin_utils.parse_args(
      sys.argv[1:] if argv is None else argv, entry="train")
  setup_logging()
  # Import after logging is set up: these pull in TF, seqio and the gin configurables.
  from prosocial_jax.training import trainer  # noqa: F401
  from prosocial_jax import models  # noqa: F401  (registers model configurables)
  gin_utils.parse_gin(gin_files, bindings, search_paths)
  trainer.train()


if __name__ == "__main__":
  main()
