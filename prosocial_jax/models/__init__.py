"""Models: shared layers, T5 (T5X parameter names), decoding with a KV cache."""

from prosocial_jax.models import layers
from prosocial_jax.models.decoding import decode_step, greedy_decode, init_decode_cache
from prosocial_jax.models.t5 import T5_1_1_SIZES, T5Config, Transformer, t5_1_1_config

__all__ = [
    "layers", "T5Config", "T5_1_1_SIZES", "t5_1_1_config", "Transformer",
    "init_decode_cache", "decode_step", "greedy_decode",
]
