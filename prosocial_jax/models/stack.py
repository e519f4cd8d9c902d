"""Running a stack of identical layers: plain, rematerialised, or one `nn.scan`.

Every model family builds its encoder and decoder stacks through `run_layers`,
so the options mean the same everywhere:

* `remat_policy` (`REMAT_POLICIES`): what each layer keeps for the backward pass.
  "none" keeps everything; "full" recomputes the whole layer; "dots" keeps
  matmul outputs; "dots_no_batch" keeps only matmuls without batch dimensions
  (the projections, not the attention scores). The loss is unchanged.
* `scan_layers`: the layers become one `nn.scan` body. Parameters live under
  `.../layers/...` instead of `.../layers_{i}/...`, stacked on axis 1
  (`PARAMS_SCAN_AXIS`, logical name `layers`): a layer's [embed, mlp] kernel is
  [embed, layers, mlp], its [embed] scale [embed, layers]. That is T5X's layout
  (`param_scan_axis = 1` in t5x/examples/scalable_t5 and flaxformer), so a
  scanned T5X tensor needs no transpose. The decoder KV cache is a separate
  choice: stacked on axis 1 too, so every cache leaf still leads with the batch
  (beam search relies on it; T5X stacks its cache on axis 0).

A layer class is a `blocks.Block`: built as `(config, dot_general, scanned=...,
**static)`, it returns `(output, None)` when `scanned` (the scan contract). Python
values the layers need (`deterministic`, `decode`, `decode_length`) are passed
by name as `static` and become module fields, so remat and scan only ever see
array arguments: nothing has to be told which positions are static.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax

from prosocial_jax.models.errors import ConfigError

REMAT_POLICIES: dict[str, Optional[Callable[..., bool]]] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}

# Logical name of the stacked-layers axis of scanned parameters (never sharded
# by the standard rules: a name without a rule maps to no mesh axis).
LAYERS_AXIS = "layers"
# Where that axis sits in every scanned parameter: 1, as T5X (see the docstring).
PARAMS_SCAN_AXIS = 1
# Where it sits in every decoder cache leaf: after the batch.
CACHE_SCAN_AXIS = 1


def check_remat_policy(policy: str, *, owner: str) -> None:
  if policy not in REMAT_POLICIES:
    raise ConfigError(f"{owner}.remat_policy must be one of {sorted(REMAT_POLICIES)}, "
                      f"got {policy!r}")


def run_layers(layer_cls: type, config: Any, dot_general: Callable, num_layers: int,
               x: jax.Array, *args, **static) -> jax.Array:
  """Applies `num_layers` layers to `x`; `args` (arrays or None) go to every layer
  unchanged, `static` become the layers' fields (e.g. deterministic=True).

  Must be called inside a compact method (the layers become its children).
  """
  cls = layer_cls
  if config.remat_policy != "none":
    cls = nn.remat(cls, policy=REMAT_POLICIES[config.remat_policy],
                   # Inside a scan, CSE cannot undo the remat; outside, keep it from doing so.
                   prevent_cse=not config.scan_layers)
  if not config.scan_layers:
    for i in range(num_layers):
      x = cls(config, dot_general, name=f"layers_{i}", **static)(x, *args)
    return x
  scanned = nn.scan(
      cls,
      variable_axes={"params": PARAMS_SCAN_AXIS, "cache": CACHE_SCAN_AXIS},
      split_rngs={"params": True, "dropout": True},
      in_axes=(nn.broadcast,) * len(args),
      length=num_layers,
      metadata_params={nn.PARTITION_NAME: LAYERS_AXIS})
  x, _ = scanned(config, dot_general, scanned=True, name="layers", **static)(x, *args)
  return x
