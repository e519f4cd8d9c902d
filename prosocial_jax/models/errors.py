"""The error a config raises for a bad field (a model's, or an optimizer's): the user's to fix.

A `ConfigError` is a `ValueError` (code that catches those keeps working) and a
`user_errors.UserError`, so `python -m prosocial_jax.train` prints its one-line
message and exits 2 instead of a traceback through gin.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from prosocial_jax.user_errors import UserError


class ConfigError(UserError, ValueError):
  """A config field that is unknown or out of range; the message names it."""


def unknown_fields(owner: str, given: Iterable[str], known: Iterable[str]) -> None:
  """Raises ConfigError naming every name of `given` not in `known`, with the nearest
  known name for each where one is close (a typo)."""
  known = sorted(known)
  unknown = sorted(set(given) - set(known))
  if not unknown:
    return
  hints = []
  for name in unknown:
    close = difflib.get_close_matches(name, known, n=1)
    hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
  raise ConfigError(f"Unknown {owner} field{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(hints)}; known: {known}")
