"""FLOPs of a training step and model FLOPs utilisation (MFU), counted by hand.

Why an explicit count and not 6 x parameters x tokens: in an encoder-decoder
each stack sees only its own tokens (the encoder the inputs, the decoder and the
output layer the targets), the embedding table is a lookup, not a matmul, and
attention scores grow with length squared. For T5 v1.1-small with inputs 128 /
targets 64, 6·N·tokens is about 2.7 times this count.

The convention (the Hugging Face peer's `forward_matmul_flops` in
`../shared/bench/t5_common.py`, which this count equals for T5 v1.1; PaLM's MFU):

* only matmuls count, 2 FLOPs per multiply-accumulate; norms, softmax,
  activations, embedding lookups, the loss and the optimizer update do not;
* per layer: the q, k, v and output projections; attention scores (QKᵀ) and
  the weighted values (AV) over the full length x length square (the causal
  decoder computes the masked half too); the MLP (T5 v1.1's gated GELU has two
  input matrices, T5 v1.0 and Prost one); cross-attention projects queries and
  outputs over the targets, keys and values over the inputs;
* the output layer: targets x emb_dim x vocab, tied to the embedding or not;
* a training step is 3 x the forward pass (the backward pass computes the
  gradients of activations and of weights: twice the forward's matmuls).
  Rematerialisation recomputes part of the forward; that is not counted, so MFU
  stays comparable across remat policies (PaLM's "model" FLOPs, not hardware FLOPs);
* lengths are the batch's row lengths (padding and packing included): what the
  compiled step computes, not the number of real tokens.

Pure Python: the trainer calls this once per run and then only multiplies.
"""

from __future__ import annotations

import re
from typing import Optional

from prosocial_jax.models import ProstConfig, T5Config

# Backward = 2 x forward (gradients with respect to activations and to weights).
TRAIN_STEP_FORWARD_MULTIPLE = 3


def _mlp_input_matrices(config) -> int:
  if isinstance(config, T5Config):
    return len(config.mlp_activations)  # ("gelu", "linear"): wi_0 and wi_1
  if isinstance(config, ProstConfig):
    return 1  # fc1
  raise TypeError(f"No FLOP count for {type(config).__name__}; known: T5Config, ProstConfig")


def forward_flops_by_part(config, batch_size: int, inputs_length: int,
                          targets_length: int) -> dict[str, int]:
  """Forward-pass matmul FLOPs of one batch, by part of the model.

  Keys: attention_projections (q, k, v, out of every self- and cross-attention),
  attention_scores (QKᵀ and AV), mlp, logits. `config` is a `T5Config` or a
  `ProstConfig`.
  """
  mlp_matrices = _mlp_input_matrices(config) + 1  # input matrices, then the output one
  for name, value in (("batch_size", batch_size), ("inputs_length", inputs_length),
                      ("targets_length", targets_length)):
    if value <= 0:
      raise ValueError(f"{name} must be positive, got {value}")
  d, inner = config.emb_dim, config.num_heads * config.head_dim
  li, lt = inputs_length, targets_length
  n_enc, n_dec = config.num_encoder_layers, config.num_decoder_layers
  # Multiply-accumulates per example.
  projections = (n_enc * 4 * li * d * inner
                 + n_dec * (4 * lt * d * inner          # self-attention q, k, v, out
                            + 2 * lt * d * inner        # cross-attention q, out
                            + 2 * li * d * inner))      # cross-attention k, v (encoder side)
  scores = (n_enc * 2 * li * li * inner
            + n_dec * (2 * lt * lt * inner + 2 * lt * li * inner))
  mlp = (n_enc * li + n_dec * lt) * mlp_matrices * d * config.mlp_dim
  logits = lt * d * config.vocab_size
  macs = dict(attention_projections=projections, attention_scores=scores, mlp=mlp,
              logits=logits)
  return {part: 2 * batch_size * count for part, count in macs.items()}


def forward_flops(config, batch_size: int, inputs_length: int, targets_length: int) -> int:
  """Matmul FLOPs of one forward pass (see the module docstring for what counts)."""
  return sum(forward_flops_by_part(config, batch_size, inputs_length, targets_length).values())


def train_step_flops(config, batch_size: int, inputs_length: int, targets_length: int) -> int:
  """Model FLOPs of one training step on a global batch: 3 x the forward pass.

  With gradient accumulation pass the whole batch (all microbatches together).
  """
  return TRAIN_STEP_FORWARD_MULTIPLE * forward_flops(config, batch_size, inputs_length,
                                                     targets_length)


# Dense (no 2:4 sparsity) peak matmul FLOP/s per chip, keyed by a pattern that
# `jax.devices()[0].device_kind` fully matches (case-insensitive), per activation
# dtype. float32 activations run at default matmul precision, which JAX computes
# in one bfloat16 pass on TPU and in TF32 on Ampere and later GPUs
# (https://docs.jax.dev/en/latest/201/precision.html); with
# jax_default_matmul_precision="highest" the real ceiling is lower than listed.
# Sources:
#   TPU: "Peak compute per chip (bf16)" of https://cloud.google.com/tpu/docs/v4
#     (275), /v5e (197), /v5p (459), /v6e (918).
#   A100: NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS, TF32 156 (both
#     doubled "with sparsity"); the same for SXM4 and PCIe, 40 and 80 GB.
#   H100: NVIDIA H100 datasheet quotes numbers with sparsity: SXM BF16 1,979 and
#     TF32 989, PCIe 1,513 and 756; dense is half (Hopper whitepaper: 989.4 / 494.7).
#   H200: NVIDIA H200 datasheet: the H100 SXM's compute (BF16 1,979, TF32 989 with
#     sparsity). The NVL (PCIe) variants of H100 and H200 run at other clocks and
#     are left out: they fall to the caller's own peak.
_T = 1e12
_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"tpu v4", dict(bfloat16=275 * _T, float32=275 * _T)),
    (r"tpu v5 ?lite|tpu v5e", dict(bfloat16=197 * _T, float32=197 * _T)),
    (r"tpu v5p?", dict(bfloat16=459 * _T, float32=459 * _T)),
    (r"tpu v6 ?lite|tpu v6e", dict(bfloat16=918 * _T, float32=918 * _T)),
    (r"nvidia a100[- ].*", dict(bfloat16=312 * _T, float32=156 * _T)),
    (r"nvidia h100 (80gb hbm3|sxm.*)", dict(bfloat16=989.4 * _T, float32=494.7 * _T)),
    (r"nvidia h100 pcie", dict(bfloat16=756.5 * _T, float32=378 * _T)),
    (r"nvidia h200", dict(bfloat16=989.4 * _T, float32=494.7 * _T)),
)
PEAK_DTYPES = ("bfloat16", "float32")


def peak_flops_per_device(device_kind: str, dtype: str = "bfloat16") -> Optional[float]:
  """Dense peak matmul FLOP/s of one device for activations of `dtype`, or None
  for hardware not in the table (CPUs, other chips): the caller then needs a peak
  of its own (the trainer's `train.peak_flops_per_device`) or logs no MFU.

  `device_kind` is `jax.devices()[0].device_kind`, e.g. "TPU v5 lite",
  "NVIDIA H100 80GB HBM3"; `dtype` a config's activation dtype.
  """
  if dtype not in PEAK_DTYPES:
    raise ValueError(f"dtype must be one of {PEAK_DTYPES}, got {dtype!r}")
  kind = device_kind.strip().lower()
  for pattern, peaks in _PEAKS:
    if re.fullmatch(pattern, kind):
      return peaks[dtype]
  return None


def mfu(flops_per_step: float, steps_per_second: float, num_devices: int,
        peak: Optional[float]) -> Optional[float]:
  """Model FLOPs utilisation: achieved model FLOP/s over the devices' peak, in [0, 1]
  for a real measurement; None when the peak is unknown."""
  if peak is None:
    return None
  if num_devices <= 0 or peak <= 0:
    raise ValueError(f"num_devices and peak must be positive, got {num_devices}, {peak}")
  return flops_per_step * steps_per_second / (num_devices * peak)
