"""From a model config to its Flax module, and to/from the JSON kept with checkpoints.

Each model family has one config class; the config alone says which module to
build, so gin files only name a config and the trainer stays family-agnostic.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn

from prosocial_jax.models import prost, t5

# family name (stored in checkpoints) -> (config class, module class)
_FAMILIES: dict[str, tuple[type, type]] = {
    "t5": (t5.T5Config, t5.Transformer),
    "prost": (prost.ProstConfig, prost.Transformer),
}


def _family_of(config) -> str:
  for family, (config_cls, _) in _FAMILIES.items():
    if isinstance(config, config_cls):
      return family
  raise TypeError(f"No model family is registered for config type {type(config).__name__}; "
                  f"known: {sorted(_FAMILIES)}")


def build_module(config) -> nn.Module:
  """The Flax module a config describes."""
  return _FAMILIES[_family_of(config)][1](config)


def config_to_dict(config) -> dict[str, Any]:
  """JSON-safe record of a model config, tagged with its family."""
  return {"family": _family_of(config), **config.to_dict()}


def config_from_dict(record: Mapping[str, Any]):
  """Inverse of `config_to_dict`."""
  record = dict(record)
  family = record.pop("family", None)
  if family not in _FAMILIES:
    raise ValueError(f"Unknown model family {family!r} in a stored config; "
                     f"known: {sorted(_FAMILIES)}")
  return _FAMILIES[family][0].from_dict(record)
