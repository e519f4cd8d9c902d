"""The model contract: what a model does, for every caller (T5X's `BaseModel`).

`EncoderDecoderModel(config)` builds the family's Flax module from its config
(`models.registry`) and owns the three things callers need:

* `loss_fn(params, batch, rng)`: teacher-forced cross entropy with z-loss,
  label smoothing and the batch's loss weights — what the train step
  differentiates;
* `score_batch(params, batch)`: per-example log-likelihood of the gold targets
  and its token count — what perplexity is computed from;
* `predict_batch(params, batch, decode=...)`: greedy, beam or sampled outputs,
  optionally with packed decode weights.

The trainer (`training.steps`), the evaluator (`evaluation.run`) and every
later entry point (eval, infer, export, importers) call only these; `training/`
keeps the jit, the sharding and the optimizer of a step, not model math.
Batches are SeqIO `EncDecFeatureConverter` outputs: encoder_input_tokens,
decoder_input_tokens, decoder_target_tokens, decoder_loss_weights, plus
*_segment_ids / *_positions when packed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp

from prosocial_jax.inference.beam_search import beam_search
from prosocial_jax.inference.decoding import greedy_decode, sample_decode
from prosocial_jax.inference.packed_weights import WEIGHT_FORMATS, pack_params
from prosocial_jax.models.losses import (correct_predictions, cross_entropy_loss,
                                         token_log_likelihoods)
from prosocial_jax.models.registry import build_module

Array = jax.Array
PyTree = Any

_PACKING_FEATURES = ("encoder_segment_ids", "decoder_segment_ids",
                     "encoder_positions", "decoder_positions")
DECODE_METHODS = ("greedy", "beam", "sample")


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
  """How `predict_batch` decodes. `max_decode_length` None: the batch's target length."""
  method: str = "greedy"
  max_decode_length: Optional[int] = None
  beam_size: int = 4
  alpha: float = 0.6           # beam search length penalty
  temperature: float = 1.0     # sampling
  top_k: int = 0
  top_p: float = 1.0
  eos_id: int = 1
  decoder_start_id: int = 0

  def __post_init__(self):
    if self.method not in DECODE_METHODS:
      raise ValueError(f"DecodeOptions.method must be one of {DECODE_METHODS}, "
                       f"got {self.method!r}")


def model_inputs(batch: Mapping[str, Array]) -> tuple[tuple, dict]:
  """Positional and keyword arguments of the encoder-decoder's __call__."""
  args = (batch["encoder_input_tokens"], batch["decoder_input_tokens"],
          batch["decoder_target_tokens"])
  kwargs = {k: batch[k] for k in _PACKING_FEATURES if k in batch}
  return args, kwargs


class EncoderDecoderModel:
  """One model (T5 or Prost, by its config) and what callers do with it."""

  def __init__(self, config, *, z_loss: float = 0.0, label_smoothing: float = 0.0):
    self.config = config
    self.module = build_module(config)
    self.z_loss = z_loss
    self.label_smoothing = label_smoothing

  @property
  def tied_output_embedding(self) -> Optional[str]:
    """The top-level embedding that is also the output layer (None: its own kernel)."""
    return self.module.tied_output_embedding

  def init(self, rng: Array, batch: Mapping[str, Any]) -> PyTree:
    """Parameters boxed with their logical axis names; only `batch`'s shapes matter."""
    variables = self.module.init(
        {"params": rng, "dropout": rng}, batch["encoder_input_tokens"],
        batch["decoder_input_tokens"], batch["decoder_target_tokens"], enable_dropout=False)
    return variables["params"]

  def logits(self, params: PyTree, batch: Mapping[str, Array], *,
             dropout_rng: Optional[Array] = None) -> Array:
    """Teacher-forced float32 logits [batch, target_len, vocab]; dropout when given a key."""
    args, kwargs = model_inputs(batch)
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
    return self.module.apply({"params": params}, *args, **kwargs,
                             enable_dropout=dropout_rng is not None, rngs=rngs)

  def loss_fn(self, params: PyTree, batch: Mapping[str, Array],
              dropout_rng: Optional[Array]) -> tuple[Array, dict[str, Array]]:
    """(mean loss per target token, {z_loss, num_tokens, correct}) of one batch."""
    logits = self.logits(params, batch, dropout_rng=dropout_rng)
    targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
    loss_sum, z_sum, num_tokens = cross_entropy_loss(
        logits, targets, weights, z_loss=self.z_loss, label_smoothing=self.label_smoothing)
    denominator = jnp.maximum(num_tokens, 1.0)
    correct = correct_predictions(logits, targets, weights)
    return loss_sum / denominator, {"z_loss": z_sum / denominator, "num_tokens": num_tokens,
                                    "correct": correct}

  def score_batch(self, params: PyTree, batch: Mapping[str, Array]) -> tuple[Array, Array]:
    """(sum of the targets' log-likelihoods [batch], number of target tokens [batch])."""
    logits = self.logits(params, batch)
    weights = batch["decoder_loss_weights"].astype(jnp.float32)
    log_likelihoods = token_log_likelihoods(logits, batch["decoder_target_tokens"])
    return jnp.sum(log_likelihoods * weights, -1), jnp.sum(weights, -1)

  def pack_decode_weights(self, params: PyTree, weights: str) -> PyTree:
    """Decoder-step weights in `weights` format (WEIGHT_FORMATS), for `predict_batch`."""
    if weights not in WEIGHT_FORMATS:
      raise ValueError(f"decode weights must be one of {WEIGHT_FORMATS}, got {weights!r}")
    return pack_params(params, weights, tied_output_embedding=self.tied_output_embedding)

  def predict_batch(self, params: PyTree, batch: Mapping[str, Array], *,
                    decode: DecodeOptions = DecodeOptions(), rng: Optional[Array] = None,
                    step_params: Optional[PyTree] = None) -> Array:
    """Output tokens [batch, max_decode_length] (0 after EOS); beam search: the best beam.

    `step_params`: weights from `pack_decode_weights`, packed once and reused.
    """
    tokens = batch["encoder_input_tokens"]
    length = decode.max_decode_length or batch["decoder_target_tokens"].shape[-1]
    common = dict(max_decode_length=length, eos_id=decode.eos_id,
                  decoder_start_id=decode.decoder_start_id, step_params=step_params)
    if decode.method == "greedy":
      return greedy_decode(self.module, params, tokens, **common)
    if decode.method == "beam":
      sequences, _ = beam_search(self.module, params, tokens, beam_size=decode.beam_size,
                                 alpha=decode.alpha, **common)
      return sequences[:, 0]
    if rng is None:
      raise ValueError("predict_batch with method='sample' needs rng=")
    return sample_decode(self.module, params, tokens, rng, temperature=decode.temperature,
                         top_k=decode.top_k, top_p=decode.top_p, **common)
