"""Train state: what a step reads and writes, and how it is laid out on the mesh.

Parameters come out of `module.init` boxed with logical axis names
(`nn.LogicallyPartitioned`). The optimizer's state mirrors the parameter tree,
so the boxes flow through `optimizer.init` and give its moments the same
logical names. From that one abstract (shape-only) state we derive every
sharding, then materialise the real state directly on the mesh: no host ever
holds a full replica of a large model.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from prosocial_jax.partitioning import logical_to_sharding, spec_axes
from prosocial_jax.user_errors import UserError


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation):
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               opt_state=optimizer.init(params))


def _boxed_init_fn(model, optimizer):
  def init(rng, dummy_batch):
    return TrainState.create(model.init(rng, dummy_batch), optimizer)
  return init


def _fit_spec_to_rank(spec: PartitionSpec, leaf) -> PartitionSpec:
  # Factored optimizer statistics (Adafactor's row/column moments) inherit the
  # box of a parameter of a higher rank; replicate those rather than fail.
  if len(spec) > len(leaf.shape):
    return PartitionSpec()
  return spec


def state_shardings(model, optimizer, dummy_batch, mesh: Mesh, rules=None):
  """(abstract unboxed TrainState, matching tree of NamedShardings)."""
  boxed = jax.eval_shape(_boxed_init_fn(model, optimizer), jax.random.key(0),
                         dummy_batch)
  abstract = nn.meta.unbox(boxed)
  logical_specs = nn.get_partition_spec(boxed)
  logical_specs = jax.tree.map(_fit_spec_to_rank, logical_specs, abstract,
                               is_leaf=lambda x: isinstance(x, PartitionSpec))
  shardings = logical_to_sharding(logical_specs, mesh, rules)
  _check_parameters_split(abstract.params, logical_specs.params, shardings.params, mesh)
  return abstract, shardings


# The config field behind each logical axis a parameter is split on (for the message).
_AXIS_FIELDS = {"heads": "num_heads", "joined_kv": "num_heads x head_dim", "mlp": "mlp_dim",
                "embed": "emb_dim", "vocab": "vocab_size"}


class ShardingError(UserError, ValueError):
  """A parameter axis that does not split over the mesh axes the rules put it on."""


def _check_parameters_split(params, logical_specs, shardings, mesh: Mesh) -> None:
  """Every split parameter axis must divide evenly: said by name before anything is
  compiled, rather than as an IndivisibleError from inside jit."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  logical = jax.tree.leaves(logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
  for (path, leaf), names, sharding in zip(flat, logical, jax.tree.leaves(shardings)):
    for dim, (size, entry) in enumerate(zip(leaf.shape, sharding.spec)):
      axes, pieces = spec_axes(mesh, entry)
      if size % pieces:
        name = names[dim] if dim < len(names) else None
        field = _AXIS_FIELDS.get(name)
        raise ShardingError(
            f"Parameter {jax.tree_util.keystr(path, simple=True, separator='/')} "
            f"{list(leaf.shape)}: its {name!r} axis ({size}) does not split over mesh "
            f"axis {' x '.join(axes)} ({pieces} devices, mesh {dict(mesh.shape)}). Make "
            + (f"{field} a multiple of {pieces}" if field else f"it a multiple of {pieces}")
            + f", or choose a mesh whose {' x '.join(axes)} divides {size}.")


def init_train_state(model, optimizer, dummy_batch, rng, mesh: Mesh, rules=None):
  """Initialises parameters and optimizer state sharded on `mesh`.

  `dummy_batch` holds ShapeDtypeStructs of the model inputs (only shapes matter).
  """
  _, shardings = state_shardings(model, optimizer, dummy_batch, mesh, rules)
  init = _boxed_init_fn(model, optimizer)
  zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), dummy_batch)
  with mesh:
    return jax.jit(lambda r, b: nn.meta.unbox(init(r, b)), out_shardings=shardings)(rng, zeros)


def abstract_target(abstract_state, shardings):
  """ShapeDtypeStructs carrying shardings: the restore target for orbax."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract_state, shardings)


def param_count(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


