#!/usr/bin/env python
"""Scaling on paper: per model size, parameters, FLOPs per token, memory per device
under each partitioning preset, and PROJECTED step times on TPU v4 / v5p and H100.

  python bench/scaling.py [--batch 128] [--chips 8] [--mfu-t5 0.21] [--mfu-prost 0.36]

Everything here is arithmetic, not a measurement:
* FLOPs: `training.flops.train_step_flops` (the explicit matmul count, 3 x forward,
  attention included) over the global batch; per token = over batch x (inputs +
  targets) positions. T5 at inputs 512 / targets 128, Prost at 128 / 128 (its
  learned positions).
* Memory per device: `bench/param_counts.py`'s estimate (bf16 activations, no
  rematerialisation, f32 state) for `dp` (parameters replicated) and `fsdp`
  (sharded over --chips). Measured on one H200 (2026-11-30, bench/results/) XLA's
  peak was 1.5x (T5 v1.0-large) and 1.7x (Prost-2.7B) these estimates: read
  them as lower bounds.
* Step time = FLOPs / (chips x datasheet peak x MFU). The MFU is an assumption:
  by default the one measured on one H200 for the nearest model (T5 v1.0-large
  bf16 20.9%, Prost-2.7B 35.6%, `bench/gpu_check.sh`), applied to every chip and
  size, which it need not fit.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import param_counts  # noqa: E402  (beside this file)

from prosocial_jax.training import flops  # noqa: E402

GIB = 1024 ** 3
# Datasheet dense bf16 peaks (training/flops.py's table, by its device_kind names).
CHIPS = {"TPU v4": "tpu v4", "TPU v5p": "tpu v5p", "H100 SXM": "nvidia h100 80gb hbm3"}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch", type=int, default=128, help="global batch (examples)")
  p.add_argument("--chips", type=int, default=8)
  p.add_argument("--mfu-t5", type=float, default=0.209)
  p.add_argument("--mfu-prost", type=float, default=0.356)
  args = p.parse_args()
  per_device = args.batch / args.chips
  print(f"PROJECTIONS (arithmetic, not measurements): global batch {args.batch} on "
        f"{args.chips} chips; assumed MFU T5 {args.mfu_t5:.1%}, Prost {args.mfu_prost:.1%}")
  print("| model | params | GFLOP per token (train) | GiB/device dp Adam | GiB/device fsdp Adam "
        "| GiB/device fsdp Adafactor | " + " | ".join(f"s/step {c}" for c in CHIPS) + " |")
  print("|---" * (6 + len(CHIPS)) + "|")
  for family, size, cfg in param_counts.configs():
    if size == "tiny":
      continue
    li, lt = (128, 128) if family == "prost" else (512, 128)
    shapes = param_counts.param_shapes(cfg)
    n = sum(int(np.prod(s)) for s in shapes)
    acts = per_device * param_counts.activation_bytes(cfg, li, lt, 2, "none")
    adam, adafactor = 16 * n, 8 * n + 4 * param_counts.adafactor_floats(shapes)
    step_flops = flops.train_step_flops(cfg, args.batch, li, lt)
    per_token = step_flops / (args.batch * (li + lt))
    mfu = args.mfu_prost if family == "prost" else args.mfu_t5
    times = [step_flops / (args.chips * flops.peak_flops_per_device(kind) * mfu)
             for kind in CHIPS.values()]
    print(f"| {family} {size} | {n / 1e9:.3f}B | {per_token / 1e9:.2f} "
          f"| {(adam + acts) / GIB:.1f} | {(adam / args.chips + acts) / GIB:.1f} "
          f"| {(adafactor / args.chips + acts) / GIB:.1f} | "
          + " | ".join(f"{t:.2f}" for t in times) + " |")


if __name__ == "__main__":
  main()
