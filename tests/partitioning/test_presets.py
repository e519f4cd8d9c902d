"""Every gin/partitioning preset parses after a model and fits the hardware it names."""

import pathlib

import gin
import pytest

from prosocial_jax import gin_utils
from prosocial_jax.partitioning import MeshShape

PRESET_DIR = pathlib.Path(__file__).resolve().parents[2] / "gin" / "partitioning"
# preset: (the devices it is written for, its mesh on them)
PRESETS = {
    "data_parallel": (8, (8, 1, 1)),
    "fsdp": (8, (1, 8, 1)),
    "data_model": (16, (2, 1, 8)),
    "tpu_v4_32": (16, (1, 8, 2)),
    "tpu_v5e_16": (16, (1, 8, 2)),
    "tpu_v5p_8": (4, (1, 4, 1)),
    "gpu_8xh100": (8, (1, 8, 1)),
    "gpu_8xh200": (8, (1, 8, 1)),
}
HARDWARE = [name for name in PRESETS if name.startswith(("tpu_", "gpu_"))]
# The models whose memory the presets work out.
MODELS = ["models/t5_1_1/large.gin", "models/t5_1_0/11b.gin", "models/prost/2_7b.gin"]
PAPER_BATCHES = (24, 32)  # Canary, Prost
REQUIRED_MACROS = ["MODEL_DIR = 'unused'", "MIXTURE_OR_TASK_NAME = 'unused'",
                   "TASK_FEATURE_LENGTHS = {}", "TRAIN_STEPS = 1", "BATCH_SIZE = 32",
                   "OPTIMIZER = None"]


@gin.configurable
def _preset_model_config(config):
  return config


def _parse(model, preset):
  """(MeshShape, model config) of `--gin_file=<model> train.gin <preset>`."""
  gin.clear_config()
  try:
    gin_utils.parse_gin([model, "runs/train.gin", f"partitioning/{preset}.gin"],
                        REQUIRED_MACROS + ["_preset_model_config.config = %MODEL_CONFIG"])
    return MeshShape(), _preset_model_config()
  finally:
    gin.clear_config()


def test_every_preset_file_is_listed():
  assert sorted(p.stem for p in PRESET_DIR.glob("*.gin")) == sorted(PRESETS)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_fits_its_devices_and_splits_the_model(preset, model):
  shape, config = _parse(model, preset)
  devices, expected = PRESETS[preset]
  data, fsdp, model_axis = shape.resolve(devices)
  assert (data, fsdp, model_axis) == expected
  assert config.emb_dim % fsdp == 0
  for size in (config.num_heads, config.mlp_dim, config.vocab_size):
    assert size % model_axis == 0, f"{preset}: {size} does not split over model={model_axis}"
  if preset in HARDWARE:
    assert all(batch % (data * fsdp) == 0 for batch in PAPER_BATCHES)
