import jax
import numpy as np
import optax
import pytest

from prosocial_jax.partitioning import (MeshShape, batch_sharding, create_mesh,
                                        logical_axis_rules)
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import (init_train_state, param_count, replicated,
                                                state_shardings)

from .conftest import dummy_batch_shapes, fixed_batch


def _compiled_step(model, optimizer, mesh):
  rules = logical_axis_rules()
  _, shardings = state_shardings(model, optimizer, dummy_batch_shapes(), mesh, rules)
  state = init_train_state(model, optimizer, dummy_batch_shapes(), jax.random.key(0),
                           mesh, rules)
  step = jax.jit(make_train_step(model, optimizer),
                 in_shardings=(shardings, batch_sharding(mesh, rules), replicated(mesh)),
                 out_shardings=(shardings, replicated(mesh)))
  return state, step


def test_loss_falls_on_a_fixed_batch(tiny_model):
  mesh = create_mesh(MeshShape(), devices=jax.devices()[:1])
  state, step = _compiled_step(tiny_model, optax.adam(1e-2), mesh)
  batch = fixed_batch()
  losses = []
  with mesh:
    for _ in range(50):
      state, metrics = step(state, batch, jax.random.key(1))
      losses.append(float(metrics["loss"]))
  # T5X init gives unit-variance logits at first: loss ~ ln V + 1/2.
  assert losses[0] == pytest.approx(np.log(64) + 0.5, rel=0.1)
  assert losses[-1] < 0.3 * losses[0]
  assert int(state.step) == 50
  assert float(metrics["target_tokens"]) == 8 * 4  # padding not counted


def test_parameters_are_sharded_by_the_logical_rules(tiny_model):
  mesh = create_mesh(MeshShape(data=2, fsdp=2, model=2))
  state = init_train_state(tiny_model, optax.adam(1e-3), dummy_batch_shapes(),
                           jax.random.key(0), mesh)
  wi = state.params["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
  assert wi.sharding.spec == jax.sharding.PartitionSpec("fsdp", "model")
  # Adam's moments mirror the parameters' layout.
  mu = state.opt_state[0].mu["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
  assert mu.sharding.spec == wi.sharding.spec
  assert param_count(state.params) > 0
