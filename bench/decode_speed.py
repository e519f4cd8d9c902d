#!/usr/bin/env python
"""Greedy decoding speed of our T5 (jitted, KV cache): the side facing the HF peer.

  python bench/decode_speed.py --size small --batch 8 --inputs-len 128 --new-tokens 32 --reps 5 \
      [--weights plain float32 bfloat16 int8]

Same protocol as ../shared/bench/hf_t5_generate.py: a randomly initialised model
(T5X initialisers), random input tokens, every row decodes exactly --new-tokens
tokens (no EOS can end a row: eos_id=-1), wall time per generate call (after
--warmup calls; compile excluded), new tokens/s = batch * new_tokens / median.
Also times the encoder alone, so the per-step decoder latency can be derived.
`--weights` packs the decoder-step weights once before timing (`inference.packed_weights`,
as an evaluation does once per run; the time it takes is reported as pack_s);
several formats are timed one after the other on the same model, a RESULT line each.
Prints one `RESULT {json}` line.
"""
import argparse
import functools
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from prosocial_jax import host_memory


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--family", choices=["t5_1_1", "t5_1_0"], default="t5_1_1")
  p.add_argument("--size", default="small")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--inputs-len", type=int, default=128)
  p.add_argument("--new-tokens", type=int, default=32)
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
  p.add_argument("--matmul", choices=["xla", "bf16_fast"], default="xla")
  p.add_argument("--step-dtype", choices=["float32", "bfloat16"], default=None,
                 help="decoder-step precision (greedy_decode's step_dtype); default: the model's")
  p.add_argument("--weights", nargs="+", default=["plain"],
                 choices=["plain", "float32", "bfloat16", "int8"],
                 help="decoder-step weights: plain, or packed in these formats (one run each)")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()

  from prosocial_jax.models.registry import build_module
  from prosocial_jax.models.t5 import t5_1_0_config, t5_1_1_config

  make = t5_1_1_config if args.family == "t5_1_1" else t5_1_0_config
  cfg = make(args.size, vocab_size=32128, dtype=args.dtype, matmul=args.matmul)
  module = build_module(cfg)
  B, Li = args.batch, args.inputs_len
  tokens = jax.random.randint(jax.random.key(args.seed + 1), (B, Li), 2, cfg.vocab_size,
                              dtype=jnp.int32)
  t0 = time.perf_counter()
  params = jax.jit(lambda rng: module.init(rng, tokens[:, :8], tokens[:, :8], tokens[:, :8],
                                           enable_dropout=False)["params"])(
      jax.random.key(args.seed))
  params = jax.block_until_ready(jax.tree.map(np.asarray, nn_unbox(params)))
  init_s = time.perf_counter() - t0

  enc = jax.jit(lambda p, t: module.apply({"params": p}, t, enable_dropout=False,
                                          method="encode"))
  for weights in args.weights:
    time_generate(args, module, params, tokens, enc, weights, init_s)


def time_generate(args, module, params, tokens, enc, weights, init_s):
  from prosocial_jax.inference import decoding
  from prosocial_jax.inference.packed_weights import pack_params

  B, Li = tokens.shape
  N = args.new_tokens
  step_params, pack_s = None, 0.0
  if weights != "plain":
    t0 = time.perf_counter()
    pack = functools.partial(pack_params, weights=weights,
                             tied_output_embedding=module.tied_output_embedding)
    step_params = jax.block_until_ready(jax.jit(pack)(params))
    pack_s = time.perf_counter() - t0
  gen = lambda: decoding.greedy_decode(module, params, tokens, max_decode_length=N, eos_id=-1,
                                       step_dtype=args.step_dtype, step_params=step_params)
  t0 = time.perf_counter()
  out = jax.block_until_ready(gen())
  compile_s = time.perf_counter() - t0
  assert out.shape == (B, N), out.shape
  for _ in range(args.warmup):
    jax.block_until_ready(gen())
    jax.block_until_ready(enc(params, tokens))
  ts, te = [], []
  for _ in range(args.reps):
    t0 = time.perf_counter()
    jax.block_until_ready(gen())
    ts.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    jax.block_until_ready(enc(params, tokens))
    te.append(time.perf_counter() - t0)
  med, enc_med = statistics.median(ts), statistics.median(te)
  res = dict(
      framework="jax", jax=jax.__version__, family=args.family, size=args.size, dtype=args.dtype,
      matmul=args.matmul,
      step_dtype=decoding.step_module_for(module, args.step_dtype, step_params).config.dtype,
      weights=weights, pack_s=round(pack_s, 2), batch=B, inputs_len=Li,
      new_tokens=N, reps=args.reps,
      init_s=round(init_s, 2), first_call_s=round(compile_s, 2),
      gen_s_min=round(min(ts), 4), gen_s_median=round(med, 4), gen_s_all=[round(t, 4) for t in ts],
      new_tokens_per_s_median=round(B * N / med, 1), new_tokens_per_s_best=round(B * N / min(ts), 1),
      encoder_s_median=round(enc_med, 4),
      decode_ms_per_step_median=round((med - enc_med) / N * 1e3, 2))
  print("RESULT " + json.dumps(res), flush=True)
  print(f"{args.family}-{args.size} {args.dtype}/{args.matmul} steps {res['step_dtype']} "
        f"weights {res['weights']} "
        f"B={B} Li={Li} new={N}: generate min/med {min(ts):.3f}/{med:.3f} s, "
        f"{B * N / med:.1f} new tok/s, encoder {enc_med * 1e3:.1f} ms, "
        f"~{res['decode_ms_per_step_median']:.1f} ms/decode step")


def nn_unbox(tree):
  import flax.linen as nn
  return nn.unbox(tree)


if __name__ == "__main__":
  host_memory.reexec_with_hugepages()  # as the train / eval commands do
  main()
