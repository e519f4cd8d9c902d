"""Every gin/models file parses into the config it promises."""

import glob
import os

import gin
import pytest

from prosocial_jax.models import ProstConfig, T5Config

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


EXPECTED = {  # file -> (config type, emb_dim, encoder layers, decoder layers, vocab)
    "t5_1_1/tiny": (T5Config, 128, 2, 2, 1024),
    "t5_1_1/small": (T5Config, 512, 8, 8, 32128),
    "t5_1_1/base": (T5Config, 768, 12, 12, 32128),
    "t5_1_1/large": (T5Config, 1024, 24, 24, 32128),
    "t5_1_1/xl": (T5Config, 2048, 24, 24, 32128),
    "t5_1_1/xxl": (T5Config, 4096, 24, 24, 32128),
    "t5_1_0/small": (T5Config, 512, 6, 6, 32128),
    "t5_1_0/base": (T5Config, 768, 12, 12, 32128),
    "t5_1_0/large": (T5Config, 1024, 24, 24, 32128),
    "t5_1_0/3b": (T5Config, 1024, 24, 24, 32128),
    "t5_1_0/11b": (T5Config, 1024, 24, 24, 32128),
    "prost/tiny": (ProstConfig, 64, 2, 3, 1024),
    "prost/2_7b": (ProstConfig, 2560, 2, 24, 8008),
}


def test_every_file_is_listed():
  found = {os.path.relpath(p, GIN_DIR)[:-4] for p in glob.glob(f"{GIN_DIR}/*/*.gin")}
  assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gin_file_builds_its_config(name):
  cfg = load(os.path.join(GIN_DIR, name + ".gin"))
  kind, emb, enc, dec, vocab = EXPECTED[name]
  assert isinstance(cfg, kind)
  assert (cfg.emb_dim, cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.vocab_size) == (
      emb, enc, dec, vocab)
  if name.startswith("t5_1_0"):
    assert cfg.logits_via_embedding and cfg.mlp_activations == ("relu",)
  if name.startswith("t5_1_1"):
    assert not cfg.logits_via_embedding and cfg.mlp_activations == ("gelu", "linear")
