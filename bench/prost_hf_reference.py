#!/usr/bin/env python
"""Writes a random tiny Hugging Face Blenderbot, inputs and its logits to an .npz
(run with the peer environment, which has torch + transformers):

  ~/peer-venv/bin/python bench/prost_hf_reference.py --out tests/models/testdata/blenderbot_tiny.npz

That file is the committed fixture of tests/models/test_prost.py, which loads it
into our Prost through `prosocial_jax.models.prost.hf_names` and compares logits.
With --count-3b it only prints facebook/blenderbot-3B's parameter count (meta device).
"""
import argparse
import json

import numpy as np


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--out", default="tests/models/testdata/blenderbot_tiny.npz")
  p.add_argument("--count-3b", action="store_true", help="only count facebook/blenderbot-3B")
  args = p.parse_args()
  import torch
  from transformers import BlenderbotConfig, BlenderbotForConditionalGeneration

  if args.count_3b:  # facebook/blenderbot-3B's config.json shapes, on the meta device
    cfg = BlenderbotConfig(vocab_size=8008, d_model=2560, encoder_layers=2, decoder_layers=24,
                           encoder_attention_heads=32, decoder_attention_heads=32,
                           encoder_ffn_dim=10240, decoder_ffn_dim=10240,
                           max_position_embeddings=128, scale_embedding=True)
    with torch.device("meta"):
      model = BlenderbotForConditionalGeneration(cfg)
    params = sum(p.numel() for p in model.parameters())
    buffers = {n: tuple(b.shape) for n, b in model.named_buffers()}
    print("RESULT " + json.dumps(dict(model="blenderbot-3B", parameters=params, buffers=buffers)))
    return

  torch.manual_seed(0)
  cfg = BlenderbotConfig(vocab_size=48, d_model=16, encoder_layers=1, decoder_layers=2,
                         encoder_attention_heads=2, decoder_attention_heads=2,
                         encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=12,
                         scale_embedding=True, activation_function="gelu", dropout=0.0,
                         attention_dropout=0.0, activation_dropout=0.0, pad_token_id=0,
                         init_std=0.3)
  model = BlenderbotForConditionalGeneration(cfg).eval()
  with torch.no_grad():  # non-trivial layer norms and biases
    for name, p in model.named_parameters():
      if name.endswith("bias") or "layer_norm" in name:
        p.add_(0.1 * torch.randn_like(p))
  g = torch.Generator().manual_seed(1)
  enc = torch.randint(1, cfg.vocab_size, (2, 9), generator=g)
  enc[1, 6:] = 0  # padding
  dec = torch.randint(1, cfg.vocab_size, (2, 7), generator=g)
  with torch.no_grad():
    logits = model(input_ids=enc, attention_mask=(enc != 0).long(), decoder_input_ids=dec).logits
  tied = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
          "lm_head.weight")  # copies of model.shared.weight
  arrays = {f"param:{k}": v.numpy() for k, v in model.state_dict().items() if k not in tied}
  arrays.update(enc=enc.numpy(), dec=dec.numpy(), logits=logits.numpy(),
                config=np.array(json.dumps(cfg.to_dict())))
  np.savez_compressed(args.out, **arrays)
  print(f"wrote {args.out}: {len(arrays)} arrays, logits {tuple(logits.shape)}")


if __name__ == "__main__":
  main()
