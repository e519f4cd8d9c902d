"""Projected step time and cost of the README's two worked examples — on paper, not
measured: FLOPs per step from the explicit count (prosocial_jax.training.flops), the
chips' datasheet peaks (the same table), an assumed MFU and an assumed hourly price.

  python tpu_scripts/projections.py

Training steps only: the periodic validation, the final SeqIO evaluation, start-up
and compilation (minutes) come on top, and early stopping can end Canary sooner.
Needs the project installed (imports prosocial_jax); everything else in tpu_scripts
does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

# Assumptions, stated once. MFU: measured on one H200 (bench/results/, 2026-11-30):
# T5 v1.0-large bf16, 64 examples of 512/128 per device, 20.9%; Prost 2.7B bf16, 64 of
# 128/128, 35.6%. These runs have far fewer examples per device (3 and 4) and add the
# collectives of 16 / 8 devices, so lower figures are assumed.
# Prices: on-demand list prices, USD per device-hour, as assumed on 2026-12-01 (check
# them before budgeting): Cloud TPU v4 $3.22 per chip-hour (us-central2); an H100 SXM
# at $3.00 per GPU-hour (a typical GPU-cloud rate for an 8-GPU node; hyperscalers'
# list prices run higher, about $7-11 per GPU-hour).


@dataclasses.dataclass(frozen=True)
class Scenario:
  title: str
  recipe: str
  family: str        # "t5_1_0" or "prost"
  size: str
  batch: int
  inputs: int
  targets: int
  steps: int
  device: str        # as jax.devices()[0].device_kind spells it
  devices: int
  price_per_device_hour: float
  mfu: float
  mfu_range: tuple[float, ...] = (0.10, 0.20, 0.35)


SCENARIOS = (
    Scenario("Canary (T5-large) on a TPU v4-32", "gin/canary/t5_large.gin", "t5_1_0", "large",
             batch=24, inputs=256, targets=64, steps=81_000, device="TPU v4", devices=16,
             price_per_device_hour=3.22, mfu=0.15),
    Scenario("Prost 2.7B on 8 x H100 (SLURM)", "gin/prost/rot_response.gin", "prost", "2_7b",
             batch=32, inputs=128, targets=128, steps=150_000,
             device="NVIDIA H100 80GB HBM3", devices=8, price_per_device_hour=3.00, mfu=0.20),
)


def project(s: Scenario) -> dict:
  from prosocial_jax.models import prost_config, t5_1_0_config
  from prosocial_jax.training import flops
  config = t5_1_0_config(s.size) if s.family == "t5_1_0" else prost_config(s.size)
  parts = flops.forward_flops_by_part(config, s.batch, s.inputs, s.targets)
  step_flops = flops.train_step_flops(config, s.batch, s.inputs, s.targets)
  peak = flops.peak_flops_per_device(s.device, "bfloat16")
  cluster_peak = peak * s.devices

  def at(mfu: float) -> tuple[float, float, float]:
    step_s = step_flops / (cluster_peak * mfu)
    hours = step_s * s.steps / 3600
    return step_s, hours, hours * s.devices * s.price_per_device_hour

  return dict(parts=parts, step_flops=step_flops, peak=peak, cluster_peak=cluster_peak,
              at=at)


def render(s: Scenario) -> str:
  p = project(s)
  step_s, hours, cost = p["at"](s.mfu)
  parts = ", ".join(f"{name} {value / 1e12:.2f}" for name, value in p["parts"].items())
  lines = [
      f"{s.title} — {s.recipe}: batch {s.batch}, inputs {s.inputs} / targets {s.targets}, "
      f"{s.steps:,} steps (PROJECTION)",
      f"  forward FLOPs      = {sum(p['parts'].values()) / 1e12:.3f} TFLOP ({parts})",
      f"  FLOPs per step     = 3 x forward = {p['step_flops'] / 1e12:.3f} TFLOP",
      f"  peak               = {s.devices} x {p['peak'] / 1e12:.1f} TFLOP/s (bf16) = "
      f"{p['cluster_peak'] / 1e12:,.0f} TFLOP/s",
      f"  step time          = {p['step_flops'] / 1e12:.3f} / ({p['cluster_peak'] / 1e12:,.0f} "
      f"x {s.mfu:.2f}) = {step_s * 1e3:.1f} ms   (assumed MFU {s.mfu:.0%})",
      f"  {s.steps:,} steps     = {step_s * s.steps:,.0f} s = {hours:.2f} h",
      f"  cost               = {hours:.2f} h x {s.devices} x ${s.price_per_device_hour:.2f} = "
      f"${cost:,.0f}",
      "  at other MFUs      = " + "; ".join(
          f"{m:.0%}: {p['at'](m)[0] * 1e3:.0f} ms/step, {p['at'](m)[1]:.1f} h, ${p['at'](m)[2]:,.0f}"
          for m in s.mfu_range),
  ]
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--mfu", type=float, help="replace the assumed MFU of both examples "
                      "(e.g. 0.3 for 30%%)")
  args = parser.parse_args(argv)
  scenarios = [dataclasses.replace(s, mfu=args.mfu) if args.mfu else s for s in SCENARIOS]
  print("\n\n".join(render(s) for s in scenarios))
  return 0


if __name__ == "__main__":
  sys.exit(main())
