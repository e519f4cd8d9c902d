"""Models: T5 (v1.0, v1.1) and Prost on shared layers; KV-cache decoding and scoring."""

from prosocial_jax.models import layers
from prosocial_jax.models.beam_search import beam_search
from prosocial_jax.models.decoding import (decode_step, filter_logits, greedy_decode,
                                           init_decode_cache, sample_decode, step_module_for)
from prosocial_jax.models.packed import PackedKernel, pack_params
from prosocial_jax.models.prost import PROST_SIZES, ProstConfig, prost_config
from prosocial_jax.models.scoring import score
from prosocial_jax.models.t5 import (T5_1_0_SIZES, T5_1_1_SIZES, T5Config, Transformer,
                                     t5_1_0_config, t5_1_1_config)

__all__ = [
    "layers", "T5Config", "T5_1_1_SIZES", "T5_1_0_SIZES", "t5_1_1_config", "t5_1_0_config",
    "Transformer", "ProstConfig", "PROST_SIZES", "prost_config",
    "init_decode_cache", "decode_step", "greedy_decode", "sample_decode", "filter_logits",
    "step_module_for", "pack_params", "PackedKernel",
    "beam_search", "score",
]
