"""What every entry point does with a user's mistake: one line of message, exit status 2.

A bad path, a missing step or a malformed record is not a bug of ours, so the user
sees the message alone, not a traceback through JAX and orbax; setting
PROSOCIAL_JAX_TRACEBACK=1 brings the traceback back for a bug report.

`UserError` marks the errors that are always the user's to fix: the data readers'
(`data.errors`: a malformed file, record or field; a missing corpus), the gin
command line's (`gin_utils.GinConfigError`), an unknown task name
(`tasks.UnknownTaskError`), a model config's unknown or out-of-range field
(`models.errors.ConfigError`) and a bad `infer` input line (`infer.InputError`).
`exit_on` turns them into the one-line message whatever else it is given.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

TRACEBACK_ENV = "PROSOCIAL_JAX_TRACEBACK"


class UserError(Exception):
  """A mistake in the user's input (file, record, flag, gin binding); the message says
  what and where. Subclasses also derive from the builtin error they refine
  (ValueError, FileNotFoundError), so existing `except ValueError` code still works."""


def message_of(error: BaseException) -> str:
  """The error's message as the user reads it: gin's "In call to configurable" trailer
  dropped, and text a terminal cannot print (a lone surrogate from a JSON escape)
  escaped, so printing the message never fails in turn."""
  # gin appends "In call to configurable 'train' (...)": not news to the user.
  message = str(error).split("\n  In call to configurable")[0]
  return message.encode("utf-8", "backslashreplace").decode("utf-8")


@contextlib.contextmanager
def exit_on(errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
  """Turns `errors` (and every UserError) raised inside the block into
  `error: <message>` on stderr and exit status 2."""
  try:
    yield
  except (UserError, *errors) as error:
    if os.environ.get(TRACEBACK_ENV):
      raise
    print(f"error: {message_of(error)}\n(set {TRACEBACK_ENV}=1 for the traceback)",
          file=sys.stderr)
    sys.exit(2)
