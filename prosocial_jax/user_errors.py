"""What every entry point does with a user's mistake: one line of message, exit status 2.

A bad path, a missing step or a malformed record is not a bug of ours, so the user
sees the message alone, not a traceback through JAX and orbax; setting
PROSOCIAL_JAX_TRACEBACK=1 brings the traceback back for a bug report.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

TRACEBACK_ENV = "PROSOCIAL_JAX_TRACEBACK"


@contextlib.contextmanager
def exit_on(errors: tuple[type[BaseException], ...]) -> Iterator[None]:
  """Turns `errors` raised inside the block into `error: <message>` and exit status 2."""
  try:
    yield
  except errors as error:
    if os.environ.get(TRACEBACK_ENV):
      raise
    # gin appends "In call to configurable 'train' (...)": not news to the user.
    message = str(error).split("\n  In call to configurable")[0]
    print(f"error: {message}\n(set {TRACEBACK_ENV}=1 for the traceback)", file=sys.stderr)
    sys.exit(2)
