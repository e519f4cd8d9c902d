#!/usr/bin/env python
"""One command: our train step, greedy decode and input pipeline against the
Hugging Face PyTorch peer on this machine, in alternating rounds, as one table.

  python bench/run.py                       # 3 rounds (~10 min on 2 cores)
  python bench/run.py --quick               # one short round (~3 min)
  python bench/run.py --json bench.json     # the table as JSON too

T5 v1.1-small, random weights and tokens: train steps at batch 8, inputs 128 /
targets 64, Adafactor (ours: `bench/train_step_speed.py`, the trainer's own step);
greedy decode at batch 8, input 128, 32 new tokens (`bench/decode_speed.py`);
the packed `canary_mixture` pipeline at the train step's batch and lengths
(`bench/input_pipeline.py`). The peers are `../shared/bench/hf_t5_train.py` (fp32
and bf16 autocast) and `hf_t5_generate.py`, run in their own environment
(`--peer-python`, default ~/peer-venv, created with torch==2.13.0 when missing).

Each figure is the median / min / max over rounds of a run's median; `vs peer`
is the median over rounds of the ratio within a round (the machine is shared, so
a ratio in one round is steadier than a ratio of medians): for the train step,
the peer's faster setting of that round over ours (above 1: we are faster); for
decoding, our new tokens/s over the peer's. MFU is against the matmul peak
measured in the same run (`matmul_peak.py`, torch and jax, before and after the
rounds, the higher of each dtype). `--json` writes the table with the headline
ratios as top-level keys: `train_vs_peer_best` and `decode_vs_peer` (our best
setting's), and `input_vs_train_step` (pipeline batches/s x our best s/step).

Every process, ours and the peer's, runs with the host malloc our commands use
by default (`prosocial_jax.host_memory`: transparent huge pages where the kernel
offers them; PROSOCIAL_JAX_HUGEPAGES=0 measures both sides without). The peer's
bf16 step gains from it as much as ours, so it is given to both.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

from prosocial_jax import host_memory

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = ["--size", "small", "--batch", "8", "--inputs-len", "128"]
TRAIN_SHAPE = SHAPE + ["--targets-len", "64"]
DECODE_SHAPE = SHAPE + ["--new-tokens", "32"]
# Our decoding settings: the model's dtype / matmul, and the decoder-step weights.
OUR_DECODES = [["--dtype", "float32", "--weights", "plain", "int8"],
               ["--dtype", "bfloat16", "--matmul", "bf16_fast", "--weights", "bfloat16", "int8"]]
PEER_PACKAGES = ["torch==2.13.0", "transformers>=5.24,<5.25", "safetensors", "sentencepiece"]


def cpu_description() -> dict:
  model, flags = "unknown", set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name") and model == "unknown":
          model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
          flags |= set(line.split(":", 1)[1].split())
  except OSError:
    pass
  wanted = sorted(f for f in flags if re.fullmatch(r"avx2|avx512f|avx512_bf16|amx\w*", f))
  return {"cpu": model, "cores": os.cpu_count(), "flags": wanted}


CHILD_ENV = host_memory.environment()  # every benchmark process's, ours and the peer's


def results(cmd: list[str], timeout: float = 1800) -> list[dict]:
  """The `RESULT {json}` lines of one benchmark process; its stderr tail on failure."""
  print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=CHILD_ENV)
  found = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
           if line.startswith("RESULT ")]
  if done.returncode or not found:
    raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}):\n"
                       + "\n".join(done.stderr.strip().splitlines()[-20:]))
  return found


def ensure_peer(python: str) -> str:
  if os.path.exists(python):
    return python
  venv = os.path.dirname(os.path.dirname(python))
  print(f"setting up the peer's environment in {venv} ({', '.join(PEER_PACKAGES)})",
        file=sys.stderr, flush=True)
  subprocess.run([sys.executable, "-m", "venv", venv], check=True)
  subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
  return python


def matmul_peaks(peer_python: str, peer_dir: str) -> dict:
  """The best GFLOP/s per dtype of torch and jax matmuls on this machine."""
  best = {}
  for python, backend in ((peer_python, "torch"), (sys.executable, "jax")):
    for r in results([python, os.path.join(peer_dir, "matmul_peak.py"), "--backend", backend,
                      "--sizes", "1024", "2048", "--reps", "7"]):
      best[r["dtype"]] = max(best.get(r["dtype"], 0.0), r["best_gflops"])
  return best  # {"fp32": ..., "bf16": ...}


def one_round(args, peer_python: str, peer_dir: str, peer_first: bool) -> dict:
  """{contender: RESULT} of one round."""
  timing = ["--steps", str(args.steps), "--warmup", "2"]
  out = {}

  def peer():
    for autocast in ([], ["--bf16-autocast"]):
      r, = results([peer_python, os.path.join(peer_dir, "hf_t5_train.py"), *TRAIN_SHAPE,
                    *timing, "--optimizer", "adafactor", *autocast])
      out["train: peer, " + ("bf16 autocast" if autocast else "fp32")] = r
    r, = results([peer_python, os.path.join(peer_dir, "hf_t5_generate.py"), *DECODE_SHAPE,
                  "--reps", str(args.reps)])
    out["decode: peer"] = r

  def ours():
    for r in results([sys.executable, os.path.join(HERE, "train_step_speed.py"), *TRAIN_SHAPE,
                      *timing, "--modes", "f32", "f32_fast", "bf16_fast"]):
      out[f"train: ours, {r['mode']}"] = r
    for setting in OUR_DECODES:
      for r in results([sys.executable, os.path.join(HERE, "decode_speed.py"), *DECODE_SHAPE,
                        "--reps", str(args.reps), *setting]):
        out[f"decode: ours, {r['dtype']}/{r['matmul']}, step weights {r['weights']}"] = r

  for part in ((peer, ours) if peer_first else (ours, peer)):
    part()
  return out


def summarise(rounds: list[dict], peaks: dict, pipeline: dict) -> dict:
  rows = {}
  for name in rounds[0]:
    per_round = [rnd[name] for rnd in rounds if name in rnd]
    train = name.startswith("train")
    value = (lambda r: r["step_s_median"]) if train else (lambda r: r["new_tokens_per_s_median"])
    values = [value(r) for r in per_round]
    ratios = []
    for rnd in rounds:
      if name not in rnd:
        continue
      if train:
        peer_best = min(rnd[k]["step_s_median"] for k in rnd if k.startswith("train: peer"))
        ratios.append(peer_best / rnd[name]["step_s_median"])
      else:
        ratios.append(rnd[name]["new_tokens_per_s_median"] / rnd["decode: peer"]["new_tokens_per_s_median"])
    row = {"unit": "s/step" if train else "new tokens/s", "median": statistics.median(values),
           "min": min(values), "max": max(values), "vs_peer": statistics.median(ratios),
           "vs_peer_per_round": [round(x, 3) for x in ratios]}
    if train:
      some = per_round[0]
      step_flops = some.get("flops_per_step", some.get("flops_explicit"))
      bf16 = some.get("dtype") == "bfloat16" or some.get("bf16_autocast")
      peak = peaks["bf16" if bf16 else "fp32"]
      row.update(flops_per_step=step_flops, peak_gflops=peak,
                 mfu=step_flops / row["median"] / 1e9 / peak,
                 tokens_per_s=8 * (128 + 64) / row["median"])
    rows[name] = row
  ours_train = min((k for k in rows if k.startswith("train: ours")), key=lambda k: rows[k]["median"])
  ours_decode = max((k for k in rows if k.startswith("decode: ours")), key=lambda k: rows[k]["vs_peer"])
  return {"rows": rows, "train_best": ours_train, "decode_best": ours_decode,
          "train_vs_peer_best": rows[ours_train]["vs_peer"],
          "decode_vs_peer": rows[ours_decode]["vs_peer"],
          "input_pipeline": pipeline,
          "input_vs_train_step": pipeline["batches_per_s"] * rows[ours_train]["median"]}


def print_table(report: dict) -> None:
  print(f"# {report['date']} · {report['cpu']} · {report['cores']} cores · flags "
        f"{' '.join(report['flags'])} · {report['rounds']} round(s)")
  print(f"# matmul peak GFLOP/s (this run): fp32 {report['peaks']['fp32']:.0f}, "
        f"bf16 {report['peaks']['bf16']:.0f}; GLIBC_TUNABLES (both sides): "
        f"{report['glibc_tunables'] or 'none'}; command: {report['command']}")
  print("| contender | median | min | max | unit | vs peer (best setting) | MFU |")
  print("|---|---|---|---|---|---|---|")
  for name, row in report["rows"].items():
    mfu = f"{row['mfu']:.1%}" if "mfu" in row else ""
    print(f"| {name} | {row['median']:.3f} | {row['min']:.3f} | {row['max']:.3f} | {row['unit']} "
          f"| {row['vs_peer']:.2f}x ({', '.join(f'{x:.2f}' for x in row['vs_peer_per_round'])}) "
          f"| {mfu} |")
  p = report["input_pipeline"]
  print(f"| input pipeline, packed canary_mixture | {p['batches_per_s']:.1f} | | | batches/s "
        f"| {report['input_vs_train_step']:.1f}x what our best train step consumes | |")
  print(f"\ntrain_vs_peer_best {report['train_vs_peer_best']:.2f} ({report['train_best']}); "
        f"decode_vs_peer {report['decode_vs_peer']:.2f} ({report['decode_best']}); "
        f"input_vs_train_step {report['input_vs_train_step']:.1f}")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--quick", action="store_true", help="one short round")
  p.add_argument("--json", metavar="FILE", help="also write the table here")
  p.add_argument("--peer-python", default=os.path.expanduser("~/peer-venv/bin/python"))
  p.add_argument("--peer-dir", default=os.path.join(HERE, "..", "..", "shared", "bench"),
                 help="the folder of hf_t5_train.py, hf_t5_generate.py and matmul_peak.py")
  args = p.parse_args(argv)
  args.steps, args.reps = (3, 2) if args.quick else (8, 5)
  rounds_wanted = 1 if args.quick else args.rounds
  if not os.path.exists(os.path.join(args.peer_dir, "hf_t5_train.py")):
    sys.exit(f"bench/run.py: no peer benchmarks in {args.peer_dir} (--peer-dir)")
  peer_python = ensure_peer(args.peer_python)
  started = time.time()

  peaks_before = matmul_peaks(peer_python, args.peer_dir)
  rounds = []
  for i in range(rounds_wanted):
    print(f"round {i + 1}/{rounds_wanted}, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    rounds.append(one_round(args, peer_python, args.peer_dir, peer_first=i % 2 == 0))
  pipeline, = results([sys.executable, os.path.join(HERE, "input_pipeline.py"), "--batch_size", "8",
                       "--inputs", "128", "--targets", "64",
                       "--batches", "60" if args.quick else "300"])
  peaks_after = matmul_peaks(peer_python, args.peer_dir)
  peaks = {d: max(peaks_before[d], peaks_after[d]) for d in peaks_before}

  report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            **cpu_description(), "rounds": rounds_wanted, "peaks": peaks,
            "glibc_tunables": CHILD_ENV.get("GLIBC_TUNABLES", ""),
            "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": round(time.time() - started), **summarise(rounds, peaks, pipeline)}
  print_table(report)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == "__main__":
  main()
