"""Where the tasks read from: the data root and the bad-record policy.

Tasks are registered at import, before gin has been parsed, so these settings are
looked up only when a dataset is built:

* the data root: `set_data_root` (the trainer calls it with the gin macro
  DATA_ROOT), else $PROSOCIAL_JAX_DATA, else the documented default;
* bad records: by default a malformed record stops the run with an error naming
  the file, record and field. `set_skip_bad_records(True)` (or
  PROSOCIAL_JAX_SKIP_BAD_RECORDS=1) leaves such records out instead; each reader
  logs how many it skipped and why.
"""

from __future__ import annotations

import os

from prosocial_jax.data.data_root import resolve_data_root

SKIP_ENV_VAR = "PROSOCIAL_JAX_SKIP_BAD_RECORDS"

_data_root: str | None = None
_skip_bad_records: bool | None = None


def set_data_root(path: str | os.PathLike | None) -> None:
  """Sets the data root the tasks read from; None goes back to the env var / default."""
  global _data_root
  _data_root = None if path is None else os.fspath(path)


def get_data_root() -> str:
  """The data root in effect now: set_data_root's, else $PROSOCIAL_JAX_DATA, else the default."""
  return resolve_data_root(_data_root)


def set_skip_bad_records(skip: bool | None) -> None:
  """Skip (and report) malformed records instead of raising; None: back to the env var."""
  global _skip_bad_records
  _skip_bad_records = skip


def skip_bad_records() -> bool:
  if _skip_bad_records is not None:
    return _skip_bad_records
  return os.environ.get(SKIP_ENV_VAR, "").lower() in ("1", "true", "yes")
