"""The encoder-decoder call interface every model family shares.

Subclasses build `self.encoder` and `self.decoder` in `setup`; this class turns
the T5X-style arguments into masks and calls them. The trainer
(`module.apply(vars, enc, dec_in, dec_tgt, **packing, enable_dropout=...)`),
`decoding` and `scoring` only rely on these three methods.
"""

from __future__ import annotations

import flax.linen as nn

from prosocial_jax.models import attention


class EncoderDecoder(nn.Module):
  """`encode`, `decode` and `__call__` (teacher forcing) over `self.encoder` / `self.decoder`.

  Encoders are called as `encoder(tokens, mask, positions, deterministic=)`;
  decoders as `decoder(encoded, tokens, positions, self_mask, cross_mask,
  deterministic=, decode=, max_decode_length=)`.
  """

  @property
  def tied_output_embedding(self):
    """Name of the top-level `Embed` whose table is also the output layer (tied
    logits), or None: what `packed.pack_params` needs to pack that layer too."""
    return None

  def encode(self, encoder_input_tokens, encoder_segment_ids=None, encoder_positions=None,
             enable_dropout=True):
    """[batch, input_len] tokens (0 = padding) -> [batch, input_len, embed] encodings."""
    mask = attention.make_encoder_mask(encoder_input_tokens, encoder_segment_ids)
    return self.encoder(encoder_input_tokens, mask, encoder_positions,
                        deterministic=not enable_dropout)

  def decode(self, encoded, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
             encoder_segment_ids=None, decoder_segment_ids=None, decoder_positions=None,
             enable_dropout=True, decode=False, max_decode_length=None):
    """Decoder logits [batch, target_len, vocab] (float32); `encoder_input_tokens`
    only gives masks.

    With `decode=True` (autoregressive, with `mutable=["cache"]`) the decoder
    self-attention is causal over the cache and target padding is ignored; the
    decoder keeps `cache/decode_index` (the position of the next token,
    `blocks.advance_decode_index`) and every layer's KV cache
    (`attention.MultiHeadAttention`).
    """
    decoder_mask, cross_mask = attention.make_decoder_masks(
        encoder_input_tokens, decoder_input_tokens, decoder_target_tokens, encoder_segment_ids,
        decoder_segment_ids, decode=decode)
    return self.decoder(
        encoded, decoder_input_tokens, decoder_positions, decoder_mask, cross_mask,
        deterministic=not enable_dropout, decode=decode, max_decode_length=max_decode_length)

  def __call__(self, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
               encoder_segment_ids=None, decoder_segment_ids=None, encoder_positions=None,
               decoder_positions=None, *, enable_dropout=True, decode=False,
               max_decode_length=None):
    """Teacher-forced logits; `decoder_input_tokens` are the targets shifted right."""
    encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions,
                          enable_dropout=enable_dropout)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                       decoder_target_tokens, encoder_segment_ids, decoder_segment_ids,
                       decoder_positions, enable_dropout=enable_dropout, decode=decode,
                       max_decode_length=max_decode_length)
