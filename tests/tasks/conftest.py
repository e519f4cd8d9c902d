"""A synthetic data root in every release format, shared by the task tests."""

import pytest

import tasks
from prosocial_jax.data import synthetic


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
  return synthetic.write_data_root(str(tmp_path_factory.mktemp("synthetic")), dialogues=12)


@pytest.fixture
def use_synthetic(synthetic_root):
  tasks.set_data_root(synthetic_root)
  yield synthetic_root
  tasks.set_data_root(None)
