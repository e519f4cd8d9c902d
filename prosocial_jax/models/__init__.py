"""Models: T5 (v1.0, v1.1) and Prost on shared layers. No mesh code, no decoding loops
(those are in `prosocial_jax.inference`)."""

from prosocial_jax.models import layers
from prosocial_jax.models.packed import PackedKernel
from prosocial_jax.models.prost import PROST_SIZES, ProstConfig, prost_config
from prosocial_jax.models.t5 import (T5_1_0_SIZES, T5_1_1_SIZES, T5Config, Transformer,
                                     t5_1_0_config, t5_1_1_config)

__all__ = [
    "layers", "T5Config", "T5_1_1_SIZES", "T5_1_0_SIZES", "t5_1_1_config", "t5_1_0_config",
    "Transformer", "ProstConfig", "PROST_SIZES", "prost_config", "PackedKernel",
]
