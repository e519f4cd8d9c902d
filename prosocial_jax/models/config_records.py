"""Model configs back from their stored JSON records (the `config.json` kept with
checkpoints): shared by every family's config class."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


def from_record(cls, record: Mapping[str, Any]):
  """`cls(**record)` for a config dataclass; unknown keys are an error, not silently
  dropped. Every field is passed explicitly, so gin bindings never leak into a
  restored config."""
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(record) - known)
  if unknown:
    raise ValueError(f"Unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
  return cls(**dict(record))
