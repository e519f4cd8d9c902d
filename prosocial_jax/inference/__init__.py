"""What a user runs after training: the model contract, decoding, packed weights, scoring.

`model.EncoderDecoderModel` is the contract the trainer and the evaluator call
(loss_fn / score_batch / predict_batch); `decoding` (greedy, sampling, the KV
cache), `beam_search`, `packed_weights` and `scoring` are its building blocks,
usable on their own. Imports only `prosocial_jax.models`.
"""

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
