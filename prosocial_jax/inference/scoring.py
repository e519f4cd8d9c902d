"""Log-likelihood of given targets under a model (perplexity, ranking candidates).

One teacher-forced forward pass; `models.losses.token_log_likelihoods` is also
what the model contract's `score_batch` uses, so every perplexity in the project
has one definition.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from prosocial_jax.inference.decoding import as_variables
from prosocial_jax.models.losses import token_log_likelihoods

Array = jax.Array


def shift_right(targets: Array, start_id: int = 0) -> Array:
  """Decoder inputs for teacher forcing: [start, t_0, ..., t_{n-2}]."""
  start = jnp.full(targets.shape[:-1] + (1,), start_id, targets.dtype)
  return jnp.concatenate([start, targets[..., :-1]], axis=-1)


@functools.partial(jax.jit, static_argnames=("module",))
def score(module: nn.Module, params: Any, encoder_input_tokens: Array, targets: Array, *,
          decoder_start_id: int = 0) -> tuple[Array, Array]:
  """log p(targets | inputs).

  Args:
    encoder_input_tokens: [batch, input_len] int32, 0 = padding.
    targets: [batch, target_len] int32, 0 = padding (not scored); include the
      EOS to score the end of the sequence.

  Returns:
    per-token log-likelihoods [batch, target_len] float32 (0 at padding) and
    per-sequence sums [batch]. Perplexity = exp(-sum(seq) / number of tokens).
  """
  targets = targets.astype(jnp.int32)
  logits = module.apply(as_variables(params), encoder_input_tokens,
                        shift_right(targets, decoder_start_id), targets, enable_dropout=False)
  per_token = token_log_likelihoods(logits, targets) * (targets > 0)
  return per_token, jnp.sum(per_token, axis=-1)
