#!/usr/bin/env python
"""Our train step on one GPU: T5-large and Prost-2.7B, step time, tokens/s, MFU, peak memory,
and A/Bs of T5-large's options (cuDNN attention, unscanned layers) against its baseline.

  python bench/gpu_check.py --out gpu_check.json [--quick] [--budget-s 480]

Run by `bench/gpu_check.sh` (which installs the `cuda` extra first). Each
measurement is `bench/train_step_speed.py` in a process of its own (the trainer's
step, its optimizers, random tokens), so each one's peak memory is its own and an
out-of-memory batch is retried at half the size. Before them the chip's bf16 and
f32 matmul rates are measured (8192^3 products, in a child process too), a second
MFU denominator beside the datasheet's dense peak (`training.flops`). This process
never touches jax: its client would take the device memory the children need.

The JSON (rewritten after every measurement, so a run cut short keeps what it
measured): `device`, `jax`, `matmul_peak_tflops`, `runs` (one object per
measurement: train_step_speed's RESULT plus `mfu_vs_measured_peak`, and for an A/B
(`BASELINES`) `versus`: the speed-up and the first-step losses' difference; the first one also
`profile`, two more steps traced with jax.profiler and summarized by kind of work and
busiest kernels, unless --no-profile), `skipped`
(what the time budget left out) and `failed` (with the error's last lines).
"""
import argparse
import json
import os
import subprocess
import sys
import time

from prosocial_jax.training import trace_summary  # no jax: this process starts no client

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, train_step_speed arguments), most important first: the time budget cuts from the end.
# Lengths are the recipes' (gin/canary/stage2.gin 512/128, gin/prost/paper_recipe.gin 128/128);
# batches fill most of an 80-141 GB device (estimates: bench/param_counts.py). No bf16_fast:
# the CPU's matmul is not for GPUs, and unscanned it did not compile in 160 s on the H200.
T5_LARGE = ("--family t5_1_0 --size large --modes bf16_xla --optimizer adafactor "
            "--scan --batch 64 --inputs-len 512 --targets-len 128")
FULL = [
    ("t5_large_bf16", T5_LARGE),
    # The same step on cuDNN's flash attention (attention_kernel='cudnn'): an A/B.
    ("t5_large_bf16_cudnn_attention", T5_LARGE + " --attention-kernel cudnn"),
    # Batch 128 ran out of memory on the H200 (141 GB) of 2026-11-30; 64 took 116 GiB.
    ("prost_2_7b_bf16", "--family prost --size 2_7b --modes bf16_xla --optimizer adam "
                        "--scan --batch 64 --inputs-len 128 --targets-len 128"),
    # Without the [batch, heads, q, k] logits and probabilities saved for the backward,
    # twice the batch may fit without remat.
    ("t5_large_bf16_cudnn_attention_b128", T5_LARGE.replace("--batch 64", "--batch 128")
     + " --attention-kernel cudnn"),
    ("t5_large_bf16_b128_remat", "--family t5_1_0 --size large --modes bf16_xla "
                                 "--optimizer adafactor --remat dots_no_batch "
                                 "--batch 128 --inputs-len 512 --targets-len 128"),
    ("t5_large_f32", "--family t5_1_0 --size large --modes f32 --optimizer adafactor "
                     "--batch 32 --inputs-len 512 --targets-len 128"),
    # Scanned layers against unscanned ones (a longer compile: last, in what time is left).
    ("t5_large_bf16_unscanned", T5_LARGE.replace(" --scan", "")),
]
# A measurement that changes one thing of another: its name -> the other's.
BASELINES = {"t5_large_bf16_cudnn_attention": "t5_large_bf16",
             "t5_large_bf16_unscanned": "t5_large_bf16"}
QUICK = [("t5_small_bf16", "--family t5_1_1 --size small --modes bf16_xla --batch 8 "
                           "--inputs-len 128 --targets-len 64")]
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory")


def matmul_tflops(dtype_name: str, n: int = 8192, reps: int = 10) -> float:
  """Runs in a child (`--matmul DTYPE N`)."""
  import jax
  import jax.numpy as jnp
  dtype = jnp.dtype(dtype_name)
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
  product = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  for _ in range(3):
    product(a, b).block_until_ready()
  t0 = time.perf_counter()
  for _ in range(reps):
    out = product(a, b)
  out.block_until_ready()
  return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def run_one(args_line: str, steps: int, timeout_s: float, profile_dir: str | None = None):
  """(RESULT dict or None, error text, out of memory?) of one train_step_speed run."""
  cmd = [sys.executable, os.path.join(HERE, "train_step_speed.py"), *args_line.split(),
         "--steps", str(steps), "--warmup", "2"]
  if profile_dir:
    cmd += ["--profile-dir", profile_dir]
  try:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
  except subprocess.TimeoutExpired:
    return None, f"timed out after {timeout_s:.0f} s", False
  for line in done.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):]), "", False
  text = done.stderr + done.stdout
  oom = any(m in text for m in OOM_MARKERS)
  lines = text.strip().splitlines()
  if oom:  # the allocator's line that says how much was asked for
    lines = [l for l in lines if any(m in l for m in OOM_MARKERS)][:3] + lines[-5:]
  return None, "\n".join(lines[-15:]), oom


def comparison(result: dict, runs: list[dict]) -> dict | None:
  """`result` against the run it changes one thing of (`BASELINES`), when both ran at the
  same batch: the speed-up (baseline s/step over this one's) and how far apart the
  first steps' losses are (the same parameters and tokens: the kernels' agreement)."""
  base = next((r for r in runs if r["name"] == BASELINES.get(result["name"])), None)
  if base is None or base["batch"] != result["batch"]:
    return None
  return {"baseline": base["name"],
          "speedup": round(base["step_s_median"] / result["step_s_median"], 3),
          "first_loss_relative_difference": round(
              abs(result["first_loss"] - base["first_loss"]) / abs(base["first_loss"]), 6)}


def batch_of(args_line: str) -> int:
  words = args_line.split()
  return int(words[words.index("--batch") + 1])


def with_batch(args_line: str, batch: int) -> str:
  words = args_line.split()
  words[words.index("--batch") + 1] = str(batch)
  return " ".join(words)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", required=True, help="the JSON file to write")
  p.add_argument("--quick", action="store_true", help="one small model only (a smoke test)")
  p.add_argument("--budget-s", type=float, default=480,
                 help="start no measurement after this many seconds (default 480)")
  p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
  p.add_argument("--no-profile", action="store_true",
                 help="do not trace the first measurement (its `profile` summary)")
  p.add_argument("--profile-dir", default="/tmp/gpu_check_profile",
                 help="where the first measurement's trace goes (default /tmp/...)")
  p.add_argument("--matmul", nargs=2, metavar=("DTYPE", "N"), help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.matmul:  # the child that measures the matmul rate
    import jax
    device = jax.devices()[0]
    print(json.dumps(dict(device=device.device_kind, platform=device.platform,
                          devices=jax.device_count(), jax=jax.__version__,
                          tflops=matmul_tflops(args.matmul[0], int(args.matmul[1])))))
    return
  start = time.time()

  def measure_matmul(dtype, n):
    done = subprocess.run([sys.executable, __file__, "--out", "-", "--matmul", dtype, str(n)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])

  device = measure_matmul("bfloat16", 8192 if not args.quick else 1024)
  report = {"device": device["device"], "platform": device["platform"],
            "devices": device["devices"], "jax": device["jax"],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "matmul_peak_tflops": {"bfloat16": round(device["tflops"], 1)},
            "runs": [], "skipped": [], "failed": []}

  def save():
    with open(args.out, "w") as f:
      json.dump(report, f, indent=1)

  if device["platform"] != "gpu" and not args.quick:
    sys.exit(f"gpu_check: jax's first device is {device['device']} ({device['platform']}), "
             "not a GPU: install the cuda extra (bench/gpu_check.sh does) or pass --quick")
  report["matmul_peak_tflops"]["float32"] = round(
      measure_matmul("float32", 8192 if not args.quick else 1024)["tflops"], 1)
  print(f"matmul TFLOP/s: {report['matmul_peak_tflops']}", flush=True)
  save()

  for index, (name, args_line) in enumerate(QUICK if args.quick else FULL):
    profile_dir = None if args.no_profile or index else os.path.join(args.profile_dir, name)
    left = args.budget_s - (time.time() - start)
    if left < 60:
      report["skipped"].append({"name": name, "why": f"time budget ({args.budget_s:.0f} s) spent"})
      save()
      continue
    t0 = time.time()
    result, error, oom = run_one(args_line, args.steps, left, profile_dir)
    while result is None and oom and batch_of(args_line) > 8:
      half = batch_of(args_line) // 2
      print(f"{name}: out of memory, again at batch {half}\n{error}", flush=True)
      args_line = with_batch(args_line, half)
      result, error, oom = run_one(args_line, args.steps, args.budget_s - (time.time() - start),
                                   profile_dir)
    if result is None:
      report["failed"].append({"name": name, "args": args_line, "error": error})
      print(f"{name}: FAILED\n{error}", flush=True)
    else:
      peak = report["matmul_peak_tflops"].get(result["dtype"])
      result.update(name=name, wall_s=round(time.time() - t0, 1),
                    mfu_vs_measured_peak=round(result["achieved_gflops"] / 1e3 / peak, 4)
                    if peak else None)
      versus = comparison(result, report["runs"])
      if versus:
        result["versus"] = versus
      report["runs"].append(result)
      print(f"{name}: {result['step_s_median']} s/step, {result['tokens_per_s']} tokens/s, "
            f"MFU {result['mfu']} (datasheet) / {result['mfu_vs_measured_peak']} (measured), "
            f"peak memory {result['peak_memory_gib']} GiB, first step {result['first_step_s']} s"
            + (f"; vs {versus['baseline']}: {versus['speedup']}x, first losses "
               f"{versus['first_loss_relative_difference']:.2e} apart" if versus else ""),
            flush=True)
      profile = result.get("profile")
      if profile:
        print(f"{name} profile: " + (profile["error"] if "error" in profile else
                                     trace_summary.format_summary(profile, top=12)), flush=True)
    save()
  print(json.dumps(report, indent=1))


if __name__ == "__main__":
  main()
