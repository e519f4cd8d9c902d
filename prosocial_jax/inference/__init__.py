"""What a user runs after training: the model contract, decoding, packed weights, scoring,
and Canary and Prost as Python objects.

`model.EncoderDecoderModel` is the contract the trainer and the evaluator call
(loss_fn / score_batch / predict_batch); `decoding` (greedy, sampling, the KV
cache), `beam_search`, `packed_weights` and `scoring` are its building blocks,
usable on their own, and import only `prosocial_jax.models`. `tools` (Canary,
Prost) and `pretrained` (opening a MODEL_DIR or an exported folder) also use
`checkpoints` and `data`; they load on first use (`from prosocial_jax.inference
import Canary`), so that importing the contract, as the trainer does, does not
also load SeqIO and the checkpoint readers.
"""

import importlib

from prosocial_jax.inference.beam_search import beam_search
from prosocial_jax.inference.decoding import (decode_step, filter_logits, greedy_decode,
                                              init_decode_cache, sample_decode, step_module_for)
from prosocial_jax.inference.model import DecodeOptions, EncoderDecoderModel
from prosocial_jax.inference.packed_weights import WEIGHT_FORMATS, pack_params
from prosocial_jax.inference.scoring import score, shift_right

__all__ = [
    "EncoderDecoderModel", "DecodeOptions", "beam_search", "decode_step", "filter_logits",
    "greedy_decode", "init_decode_cache", "sample_decode", "step_module_for", "WEIGHT_FORMATS",
    "pack_params", "score", "shift_right",
]

# Loaded on first use (see the module docstring).
_TOOLS = ("Canary", "Prost", "CanaryOutput", "ProstOutput")


def __getattr__(name):
  if name in _TOOLS:
    return getattr(importlib.import_module("prosocial_jax.inference.tools"), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
