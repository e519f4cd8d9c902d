"""Every gin/models file parses into the config it promises."""

import glob
import os

import gin
import pytest

from prosocial_jax.models import (PROST_SIZES, T5_1_0_SIZES, T5_1_1_SIZES, ProstConfig, T5Config,
                                  prost_config, t5_1_0_config, t5_1_1_config)

GIN_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "gin", "models")


@gin.configurable
def _model_config(config):
  return config


def load(path):
  gin.clear_config()
  try:
    gin.parse_config_file(path)
    gin.parse_config("_model_config.config = %MODEL_CONFIG")
    return _model_config()
  finally:
    gin.clear_config()


# gin/models/<family>/<size>.gin <- the one size table of each family.
FAMILIES = {"t5_1_1": (t5_1_1_config, T5_1_1_SIZES), "t5_1_0": (t5_1_0_config, T5_1_0_SIZES),
            "prost": (prost_config, PROST_SIZES)}
EXPECTED = {f"{family}/{size}": (factory, size)
            for family, (factory, table) in FAMILIES.items() for size in table}


def test_every_file_is_a_size_of_a_table_and_every_size_has_a_file():
  found = {os.path.relpath(p, GIN_DIR)[:-4] for p in glob.glob(f"{GIN_DIR}/*/*.gin")}
  assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gin_file_builds_the_config_of_its_size(name):
  cfg = load(os.path.join(GIN_DIR, name + ".gin"))
  factory, size = EXPECTED[name]
  # Sizes without a vocabulary of their own (tiny) take the gin file's.
  assert cfg == factory(size, vocab_size=cfg.vocab_size)


# A few sizes typed out independently of the tables, so a wrong table still fails:
# (config type, emb_dim, heads, mlp_dim, encoder layers, decoder layers, vocab).
SPOT_CHECKS = {
    "t5_1_1/tiny": (T5Config, 128, 4, 512, 2, 2, 1024),
    "t5_1_1/large": (T5Config, 1024, 16, 2816, 24, 24, 32128),
    "t5_1_0/small": (T5Config, 512, 8, 2048, 6, 6, 32128),
    "t5_1_0/11b": (T5Config, 1024, 128, 65536, 24, 24, 32128),
    "prost/2_7b": (ProstConfig, 2560, 32, 10240, 2, 24, 8008),
}


@pytest.mark.parametrize("name", sorted(SPOT_CHECKS))
def test_spot_checks(name):
  cfg = load(os.path.join(GIN_DIR, name + ".gin"))
  kind, *sizes = SPOT_CHECKS[name]
  assert isinstance(cfg, kind)
  assert [cfg.emb_dim, cfg.num_heads, cfg.mlp_dim, cfg.num_encoder_layers,
          cfg.num_decoder_layers, cfg.vocab_size] == sizes
  if name.startswith("t5_1_0"):
    assert cfg.logits_via_embedding and cfg.mlp_activations == ("relu",)
  if name.startswith("t5_1_1"):
    assert not cfg.logits_via_embedding and cfg.mlp_activations == ("gelu", "linear")
