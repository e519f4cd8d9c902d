"""What every importer of an outside checkpoint returns, and the rules it follows.

An importer reads one outside format (Hugging Face, T5X, Mesh-TensorFlow, ...)
and yields our parameters under our names (`models/t5/network.py`,
`models/prost/network.py`), one tensor at a time, so a large checkpoint never
has to sit in host memory twice. It is declarative where it can be: a table from
the source's names to ours plus a few named transforms (transpose, reshape,
stack layers). It refuses what it cannot place: an unmapped source tensor, a
missing target parameter, or a shape that does not match the config is an
error naming the tensor, never a silent skip. What it deliberately leaves out
(optimizer slots, tied copies, zero buffers) is listed in the report.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Iterator, Optional

import numpy as np


class CheckpointImportError(ValueError):
  """An outside checkpoint cannot be imported; the message names the file and tensor."""


@dataclasses.dataclass
class ImportReport:
  """What an import did, tensor by tensor (printed by `python -m prosocial_jax.convert`)."""
  loaded: list[str] = dataclasses.field(default_factory=list)        # our names, as read
  converted: dict[str, str] = dataclasses.field(default_factory=dict)  # our name -> transform
  initialised: list[str] = dataclasses.field(default_factory=list)   # left freshly initialised
  ignored: dict[str, str] = dataclasses.field(default_factory=dict)  # source name -> why

  def summary(self) -> str:
    lines = [f"loaded {len(self.loaded)} tensors ({len(self.converted)} converted)"]
    if self.initialised:
      lines.append(f"left freshly initialised: {', '.join(self.initialised)}")
    for name, why in sorted(self.ignored.items()):
      lines.append(f"ignored {name}: {why}")
    return "\n".join(lines)


@dataclasses.dataclass
class Imported:
  """An outside checkpoint seen as one of ours.

  `config`: our model config for it (T5Config / ProstConfig).
  `tensors()`: yields (our parameter path 'encoder/layers_0/attention/query/kernel',
  float32 numpy array) one at a time, each exactly once.
  `vocabulary`: where its vocabulary lives when the checkpoint ships one
  ({"kind": "sentencepiece", "source": path} or None).
  """
  format: str
  source: str
  config: Any
  tensors: Callable[[], Iterator[tuple[str, np.ndarray]]]
  report: ImportReport
  vocabulary: Optional[dict[str, Any]] = None


def expected_param_shapes(config) -> dict[str, tuple[int, ...]]:
  """Every parameter `config`'s model has, by our name, with its shape (from the
  model's own init, traced without computing anything)."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from prosocial_jax.models.registry import build_module

  # Traced with the kernel that traces anywhere ("xla"): every kernel has the same parameters.
  module = build_module(config.runnable_on("cpu"))
  tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  variables = jax.eval_shape(
      lambda rng, x: module.init({"params": rng, "dropout": rng}, x, x, x, enable_dropout=False),
      jax.random.key(0), tokens)
  flat = jax.tree_util.tree_flatten_with_path(nn.meta.unbox(variables["params"]))[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
          for path, leaf in flat}


_LAYER = re.compile(r"(.+)/layers_(\d+)/(.+)")


def stack_layers(imported: Imported, config) -> Imported:
  """`imported`, read in the unscanned layout (`.../layers_{i}/...`), for `config`,
  which scans its layers: each stack's `layers_{i}/<rest>` tensors become one
  `layers/<rest>`, stacked on `stack.PARAMS_SCAN_AXIS` (axis 1, T5X's layout).

  A stacked tensor is yielded once its last layer has arrived, so host memory holds
  at most one stack's layers of each parameter in flight (a layer-major source such
  as Hugging Face's holds about one stack at a time)."""
  from prosocial_jax.models import stack  # pylint: disable=import-outside-toplevel

  depth: dict[str, int] = {}
  for name in expected_param_shapes(imported.config):
    m = _LAYER.fullmatch(name)
    if m:
      depth[m.group(1)] = max(depth.get(m.group(1), 0), int(m.group(2)) + 1)
  report = imported.report
  stacked_names = []
  for name in report.loaded:
    m = _LAYER.fullmatch(name)
    if not m:
      stacked_names.append(name)
    elif m.group(2) == "0":
      joined = f"{m.group(1)}/layers/{m.group(3)}"
      stacked_names.append(joined)
      report.converted[joined] = (f"{depth[m.group(1)]} layers stacked on axis "
                                  f"{stack.PARAMS_SCAN_AXIS} (scan_layers)")
  report.loaded[:] = stacked_names

  def tensors() -> Iterator[tuple[str, np.ndarray]]:
    pending: dict[str, dict[int, np.ndarray]] = {}
    for name, array in imported.tensors():
      m = _LAYER.fullmatch(name)
      if not m:
        yield name, array
        continue
      joined = f"{m.group(1)}/layers/{m.group(3)}"
      layers = pending.setdefault(joined, {})
      layers[int(m.group(2))] = array
      if len(layers) == depth[m.group(1)]:
        del pending[joined]
        yield joined, np.stack([layers[i] for i in range(len(layers))],
                               axis=stack.PARAMS_SCAN_AXIS)
    if pending:
      name, layers = sorted(pending.items())[0]
      raise CheckpointImportError(
          f"{imported.source}: {name} lacks layers "
          f"{sorted(set(range(depth[name.rsplit('/layers/', 1)[0]])) - set(layers))}")

  return dataclasses.replace(imported, config=config, tensors=tensors)
