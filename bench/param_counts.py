#!/usr/bin/env python
"""Parameter counts of every model size and per-device memory estimates for training.

  python bench/param_counts.py [--batch 32] [--inputs-len 512] [--targets-len 128] [--devices 8]

Counts come from `jax.eval_shape` of the real modules (no FLOPs, no memory).
Training memory per device, in GiB, for a global batch of --batch examples of
--inputs-len / --targets-len tokens on --devices devices, under two layouts:

* `dp`: data parallel, parameters replicated: every device holds all of
  params + grads + optimizer state, and batch/devices examples of activations.
* `fsdp`: parameters, grads and optimizer state sharded over all devices
  (T5X's `embed` -> fsdp rule; activations as in `dp`).

Terms (parameters are float32; activations in --dtype):
* params 4 B/param; grads 4 B/param.
* Adam: two float32 moments, 8 B/param. Adafactor (T5X default: factored second
  moment, no momentum): a row and a column statistic per matrix, a full one per
  vector, 4 B each.
* activations kept for the backward pass, per example, without rematerialisation
  (`remat none`): per encoder token and layer, the layer input, two norm outputs,
  q/k/v/attention output and the MLP hidden states ((4 d + 4 hd + m_saved) values,
  m_saved = 3 mlp for gated GELU: two projections + activation; 2 mlp for one
  activation) plus the float32 attention probabilities (heads x keys); per decoder
  token and layer (6 d + 6 hd + m_saved) values and self + cross probabilities,
  plus the cross-attention keys/values (2 hd per input token); plus float32 logits
  and their gradient (2 x vocab per target token). With `remat full` only each layer's
  input is kept (d values per token and layer) plus one layer's working set.
  These are estimates (XLA's buffer reuse and fusion change the constants), good
  for choosing a mesh, not for the last GiB.
"""
import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

GIB = 1024 ** 3


def configs():
  from prosocial_jax.models import prost_config, t5_1_0_config, t5_1_1_config
  out = [("t5_1_1", s, t5_1_1_config(s, vocab_size=32128)) for s in
         ("tiny", "small", "base", "large", "xl", "xxl")]
  out += [("t5_1_0", s, t5_1_0_config(s)) for s in ("small", "base", "large", "3b", "11b")]
  out += [("prost", "2_7b", prost_config("2_7b"))]
  return out


def param_shapes(config):
  from prosocial_jax.models.registry import build_module
  tokens = jnp.ones((1, 4), jnp.int32)
  module = build_module(config)
  boxed = jax.eval_shape(functools.partial(module.init, enable_dropout=False),
                         jax.random.key(0), tokens, tokens, tokens)["params"]
  return [x.shape for x in jax.tree.leaves(boxed)]


def adafactor_floats(shapes):
  return sum((s[0] + s[1]) if len(s) == 2 else int(np.prod(s)) for s in shapes)


def activation_bytes(cfg, li, lt, act_bytes, remat):
  """Per-example bytes kept for the backward pass (see the module docstring)."""
  d, hd, m, h = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.mlp_dim, cfg.num_heads
  gated = len(getattr(cfg, "mlp_activations", ("x",))) > 1
  m_saved = 3 * m if gated else 2 * m
  vocab = cfg.vocab_size
  enc_layer = li * ((4 * d + 4 * hd + m_saved) * act_bytes + h * li * 4)
  # Decoder: self + cross attention per target token, cross keys/values per input token.
  dec_layer = (lt * ((6 * d + 6 * hd + m_saved) * act_bytes + h * (lt + li) * 4)
               + li * 2 * hd * act_bytes)
  logits = 2 * lt * vocab * 4
  if remat == "none":
    return cfg.num_encoder_layers * enc_layer + cfg.num_decoder_layers * dec_layer + logits
  kept = (cfg.num_encoder_layers * li + cfg.num_decoder_layers * lt) * d * act_bytes
  return kept + max(enc_layer, dec_layer) + logits


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=32, help="global batch (examples)")
  p.add_argument("--inputs-len", type=int, default=512)
  p.add_argument("--targets-len", type=int, default=128)
  p.add_argument("--devices", type=int, default=8)
  p.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")
  args = p.parse_args()
  act_bytes = 2 if args.dtype == "bfloat16" else 4
  per_device = args.batch / args.devices
  rows = []
  for family, size, cfg in configs():
    shapes = param_shapes(cfg)
    n = sum(int(np.prod(s)) for s in shapes)
    # Prost's learned positions cap both lengths.
    li = min(args.inputs_len, getattr(cfg, "max_positions", args.inputs_len))
    lt = min(args.targets_len, getattr(cfg, "max_positions", args.targets_len))
    state = {"adam": (4 + 4 + 8) * n, "adafactor": (4 + 4) * n + 4 * adafactor_floats(shapes)}
    acts = {r: per_device * activation_bytes(cfg, li, lt, act_bytes, r) for r in ("none", "full")}
    row = dict(family=family, size=size, params=n, params_m=round(n / 1e6, 1))
    for opt, b in state.items():
      for r, a in acts.items():
        row[f"dp_{opt}_remat_{r}_gib"] = round((b + a) / GIB, 2)
        row[f"fsdp_{opt}_remat_{r}_gib"] = round((b / args.devices + a) / GIB, 2)
    row["inputs_len"], row["targets_len"] = li, lt
    rows.append(row)
  setting = dict(global_batch=args.batch, devices=args.devices, inputs_len=args.inputs_len,
                 targets_len=args.targets_len, activation_dtype=args.dtype)
  print("RESULT " + json.dumps(dict(setting=setting, models=rows)))
  print(f"per-device GiB, global batch {args.batch} on {args.devices} devices "
        f"({per_device:g} examples each), inputs {args.inputs_len} / targets {args.targets_len}, "
        f"{args.dtype} activations")
  head = (f"{'model':16s} {'params':>10s} | {'dp adam':>9s} {'dp adafac':>9s} | "
          f"{'fsdp adam':>9s} {'fsdp adafac':>11s} {'fsdp adam+remat':>15s}")
  print(head)
  for r in rows:
    print(f"{r['family'] + '-' + r['size']:16s} {r['params_m']:9.1f}M | "
          f"{r['dp_adam_remat_none_gib']:9.2f} {r['dp_adafactor_remat_none_gib']:9.2f} | "
          f"{r['fsdp_adam_remat_none_gib']:9.2f} {r['fsdp_adafactor_remat_none_gib']:11.2f} "
          f"{r['fsdp_adam_remat_full_gib']:15.2f}")


if __name__ == "__main__":
  main()
