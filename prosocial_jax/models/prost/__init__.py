"""Prost: the PushShift / BlenderBot encoder-decoder (Hugging Face Blenderbot names)."""

from prosocial_jax.models.prost.config import PROST_SIZES, ProstConfig, prost_config
from prosocial_jax.models.prost.network import Decoder, Encoder, Transformer

__all__ = ["ProstConfig", "PROST_SIZES", "prost_config", "Encoder", "Decoder", "Transformer"]
