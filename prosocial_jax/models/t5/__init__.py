"""T5 encoder-decoder: config, size tables and network (T5X parameter names)."""

from prosocial_jax.models.t5.config import (T5_1_0_SIZES, T5_1_1_SIZES, T5Config, t5_1_0_config,
                                            t5_1_1_config)
from prosocial_jax.models.t5.network import Decoder, Encoder, Transformer

__all__ = ["T5Config", "T5_1_1_SIZES", "T5_1_0_SIZES", "t5_1_1_config", "t5_1_0_config",
           "Encoder", "Decoder", "Transformer"]
