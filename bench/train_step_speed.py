#!/usr/bin/env python
"""Train-step time of our T5 under each matmul / dtype option (the peer: hf_t5_train.py).

  python bench/train_step_speed.py --size small --batch 8 --inputs-len 128 --targets-len 64

One jitted step = forward + backward + Adafactor update (optax.adafactor, T5X's
defaults: factored, no momentum), random tokens, median of --steps after
--warmup. Modes: float32 / XLA; bfloat16 / XLA (flax dtype only); bfloat16 /
bf16_fast (the custom-VJP matmul). Prints one `RESULT {json}` line per mode.
"""
import argparse
import functools
import json
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from prosocial_jax.models.registry import build_module
from prosocial_jax.models.t5 import t5_1_1_config
from prosocial_jax.models.losses import cross_entropy_loss

MODES = {"f32": ("float32", "xla"), "bf16_xla": ("bfloat16", "xla"),
         "bf16_fast": ("bfloat16", "bf16_fast")}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--size", default="small")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--inputs-len", type=int, default=128)
  p.add_argument("--targets-len", type=int, default=64)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
  args = p.parse_args()
  key = jax.random.key(0)
  enc = jax.random.randint(key, (args.batch, args.inputs_len), 2, 32128, dtype=jnp.int32)
  tgt = jax.random.randint(jax.random.fold_in(key, 1), (args.batch, args.targets_len), 2, 32128,
                           dtype=jnp.int32)
  dec_in = jnp.pad(tgt[:, :-1], ((0, 0), (1, 0)))
  params = None
  for mode in args.modes:
    dtype, matmul = MODES[mode]
    module = build_module(t5_1_1_config(args.size, dtype=dtype, matmul=matmul))
    if params is None:
      params = nn.unbox(jax.jit(functools.partial(module.init, enable_dropout=False))(
          key, enc[:, :8], dec_in[:, :8], tgt[:, :8])["params"])
    optimizer = optax.adafactor(learning_rate=1e-3)

    @jax.jit
    def step(params, opt_state):
      def loss_fn(p):
        logits = module.apply({"params": p}, enc, dec_in, tgt, enable_dropout=False)
        loss, _, n = cross_entropy_loss(logits, tgt, jnp.ones_like(tgt, jnp.float32))
        return loss / n
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    state = (params, optimizer.init(params))
    t0 = time.perf_counter()
    state = jax.block_until_ready(step(*state))[:2]
    compile_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
      state = jax.block_until_ready(step(*state))[:2]
    ts = []
    for _ in range(args.steps):
      t0 = time.perf_counter()
      *state, loss = jax.block_until_ready(step(*state))
      ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    tokens = args.batch * (args.inputs_len + args.targets_len)
    print("RESULT " + json.dumps(dict(
        framework="jax", size=args.size, mode=mode, dtype=dtype, matmul=matmul,
        batch=args.batch, inputs_len=args.inputs_len, targets_len=args.targets_len,
        first_step_s=round(compile_s, 2), step_s_median=round(med, 3),
        step_s_all=[round(t, 3) for t in ts], tokens_per_s=round(tokens / med, 1),
        loss=round(float(loss), 4))), flush=True)


if __name__ == "__main__":
  main()
