"""Every mesh trains the same model (issue 10, "every mesh").

Three Adam steps of a tiny T5 (with dropout) on 8 simulated devices give the
single-device losses and parameters on each (data, fsdp, model) mesh, and every
parameter and Adam moment is stored in the shard its logical axes ask for:
`embed` split over fsdp; `vocab`, `mlp`, `heads` and `joined_kv` over model;
the rest replicated. The model's dimensions are multiples of 8, so (1,8,1) and
(1,1,8) split every tensor that has such an axis 8 ways.
"""

import math

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.models import attention
from prosocial_jax.partitioning import MeshShape, batch_sharding, create_mesh
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import init_train_state, replicated, state_shardings

from .conftest import dummy_batch_shapes, fixed_batch, tiny_test_config

MESHES = [(1, 1, 1), (8, 1, 1), (1, 8, 1), (2, 4, 1), (2, 2, 2), (1, 4, 2), (1, 1, 8)]
STEPS = 3
# The layout the standard rules promise, stated independently of rules.py.
MESH_AXIS_OF = {"embed": "fsdp", "vocab": "model", "mlp": "model", "heads": "model",
                "joined_kv": "model"}


@pytest.fixture(scope="module")
def model():
  return EncoderDecoderModel(tiny_test_config(num_heads=8, head_dim=4, dropout_rate=0.1))


def _step_on(model, mesh_sizes):
  """(mesh, initial Adam state, the jitted train step) on the mesh."""
  devices = jax.devices()[:math.prod(mesh_sizes)]
  mesh = create_mesh(MeshShape(*mesh_sizes), devices=devices)
  optimizer = optax.adam(1e-2)
  _, shardings = state_shardings(model, optimizer, dummy_batch_shapes(), mesh)
  state = init_train_state(model, optimizer, dummy_batch_shapes(), jax.random.key(0), mesh)
  step = jax.jit(make_train_step(model, optimizer),
                 in_shardings=(shardings, batch_sharding(mesh), replicated(mesh)),
                 out_shardings=(shardings, replicated(mesh)))
  return mesh, state, step


def _train(model, mesh_sizes):
  """(initial state, per-step losses, final state) of STEPS Adam steps on the mesh."""
  mesh, state, step = _step_on(model, mesh_sizes)
  initial = state
  losses = []
  with mesh:
    for i in range(STEPS):
      state, metrics = step(state, fixed_batch(seed=i), jax.random.key(1))
      losses.append(float(metrics["loss"]))
  return initial, losses, state


@pytest.fixture(scope="module")
def trained(model):
  """`_train` once per mesh: the single-device run serves every test as reference."""
  runs = {}

  def run(mesh_sizes):
    if mesh_sizes not in runs:
      runs[mesh_sizes] = _train(model, mesh_sizes)
    return runs[mesh_sizes]
  return run


def _logical_axes(model):
  boxed = jax.eval_shape(model.init, jax.random.key(0), dummy_batch_shapes())
  return nn.get_partition_spec(boxed)


def _expected_shard_shape(shape, logical_axes, mesh_sizes):
  sizes = dict(zip(("data", "fsdp", "model"), mesh_sizes))
  return tuple(dim // sizes[MESH_AXIS_OF[axis]] if axis in MESH_AXIS_OF else dim
               for dim, axis in zip(shape, logical_axes))


def _shard_shapes(tree):
  return jax.tree.map(lambda x: x.addressable_shards[0].data.shape, tree)


def _bytes_per_device(tree):
  return sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(tree))


@pytest.mark.slow
@pytest.mark.parametrize("mesh_sizes", MESHES, ids=lambda sizes: "x".join(map(str, sizes)))
def test_mesh_matches_a_single_device(model, trained, mesh_sizes):
  initial, losses, state = trained(mesh_sizes)
  _, reference_losses, reference_state = trained((1, 1, 1))
  assert losses == pytest.approx(reference_losses, abs=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
               jax.device_get(reference_state.params), jax.device_get(state.params))

  expected = jax.tree.map(
      lambda x, axes: _expected_shard_shape(x.shape, axes, mesh_sizes), initial.params,
      _logical_axes(model), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  adam = initial.opt_state[0]
  for label, tree in [("params", initial.params), ("Adam mu", adam.mu), ("Adam nu", adam.nu),
                      ("params after 3 steps", state.params)]:
    assert _shard_shapes(tree) == expected, label
  # Bytes per device: what those shards add up to, the same again for each Adam
  # moment; everything where neither fsdp nor model splits.
  per_device = _bytes_per_device(initial.params)
  assert per_device == sum(4 * math.prod(shape) for shape in jax.tree.leaves(
      expected, is_leaf=lambda x: isinstance(x, tuple)))
  assert _bytes_per_device(adam.mu) == _bytes_per_device(adam.nu) == per_device
  total = sum(x.nbytes for x in jax.tree.leaves(initial.params))
  assert (per_device == total) == (mesh_sizes[1] * mesh_sizes[2] == 1)


def test_the_fused_attention_kernel_trains_alike_on_a_mesh(monkeypatch):
  # XLA's reference behind the cuDNN call (no GPU here): the unpacked batch's lengths
  # and padded targets, split over data and heads over model, as on one device. What
  # cuDNN's own partitioner does waits for a multi-GPU machine.
  monkeypatch.setattr(attention, "FUSED_IMPLEMENTATION", "xla")
  model = EncoderDecoderModel(tiny_test_config(num_heads=8, head_dim=8, dtype="bfloat16",
                                               attention_kernel="cudnn"))
  _, one_device, _ = _train(model, (1, 1, 1))
  _, mesh, _ = _train(model, (2, 2, 2))
  assert mesh == pytest.approx(one_device, rel=1e-2)
  assert one_device[-1] < one_device[0]


def test_one_hot_embeddings_keep_the_gradient_off_a_scatter_on_an_fsdp_mesh():
  # A gather's backward is a scatter-add into the fsdp-sharded table, for which XLA
  # replicates the batch-sharded gradient ("Involuntary full rematerialization"); the
  # one-hot lookup's backward is a matmul, sharded like any other.
  def embedding_scatters(config):
    mesh, state, step = _step_on(EncoderDecoderModel(config), (2, 2, 2))
    with mesh:
      hlo = step.lower(state, fixed_batch(), jax.random.key(1)).compile().as_text()
    return [line for line in hlo.splitlines()
            if " scatter(" in line and "token_embedder" in line]
  assert embedding_scatters(tiny_test_config(num_heads=8))
  assert not embedding_scatters(tiny_test_config(num_heads=8, one_hot_embedding=True))
  _, gather_losses, _ = _train(EncoderDecoderModel(tiny_test_config(num_heads=8)), (2, 2, 2))
  _, one_hot_losses, _ = _train(
      EncoderDecoderModel(tiny_test_config(num_heads=8, one_hot_embedding=True)), (2, 2, 2))
  assert one_hot_losses == pytest.approx(gather_losses, abs=1e-5)
