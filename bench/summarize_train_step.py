#!/usr/bin/env python
"""The table of a train_step_vs_peer.sh log: each contender against the peer's best setting.

  python bench/summarize_train_step.py /tmp/train_step_vs_peer.log

`vs peer best` is the median over rounds of (the peer's faster setting in that
round, fp32 or bf16 autocast, in s/step) / (the contender's s/step in the same
round): above 1 is faster than the peer. The machine is shared, so a ratio within
one round is steadier than a ratio of medians. MFU is against the `# peak` line's
measured matmul rate for the run's dtype, the same denominator for both sides.
Also checks that both sides count the same FLOPs per step.
"""
import collections
import json
import statistics
import sys

from prosocial_jax.training import flops


def key_of(r):
  if r["framework"] == "jax":
    return f"ours, {r['mode']}"
  return "peer, bf16 autocast" if r["bf16_autocast"] else "peer, fp32"


def peak_dtype(r):
  if r["framework"] == "jax":
    return "bf16" if r["dtype"] == "bfloat16" else "fp32"
  return "bf16" if r["bf16_autocast"] else "fp32"


def main():
  runs = collections.defaultdict(dict)  # contender -> {round: result}
  loads, header, peaks, round_no = [], [], {}, 0
  for line in open(sys.argv[1]):
    if line.startswith("# round"):
      round_no += 1
    if line.startswith("# ") and "load:" in line:
      loads.append(line.split("load:")[1].split()[0])
    elif line.startswith("# "):
      header.append(line[2:].rstrip())
    if line.startswith("# peak "):  # "# peak fp32 X bf16 Y (...)"
      words = line.split()
      for dtype in ("fp32", "bf16"):
        peaks[dtype] = max(peaks.get(dtype, 0.0), float(words[words.index(dtype) + 1]))
    if line.startswith("RESULT "):
      r = json.loads(line[len("RESULT "):])
      runs[key_of(r)][round_no] = r
  peer_best = {stat: {} for stat in ("step_s_median", "step_s_min")}
  for name in ("peer, fp32", "peer, bf16 autocast"):
    for rnd, r in runs.get(name, {}).items():
      for stat, best in peer_best.items():
        best[rnd] = min(best.get(rnd, float("inf")), r[stat])
  step_flops = {r.get("flops_per_step", r.get("flops_explicit"))
                for by_round in runs.values() for r in by_round.values()}

  print("\n".join(header))
  print(f"1-minute load at each round and at the end: {', '.join(loads)}")
  print(f"MFU against the highest measured matmul peak: fp32 {peaks['fp32']} GFLOP/s, "
        f"bf16 {peaks['bf16']} GFLOP/s")
  print(f"FLOPs per step, both sides: {sorted(step_flops)}"
        + (" (equal)" if len(step_flops) == 1 else " (DIFFER)"))
  print()
  print("| contender | s/step median | vs peer (median steps) | s/step best | tokens/s best "
        "| MFU best | vs peer (best steps) |")
  print("|---|---|---|---|---|---|---|")
  for name, by_round in runs.items():
    row = [name]
    for stat in ("step_s_median", "step_s_min"):
      step_s = statistics.median(r[stat] for r in by_round.values())
      ratios = [peer_best[stat][rnd] / r[stat] for rnd, r in by_round.items()
                if rnd in peer_best[stat]]
      vs = (f"**{statistics.median(ratios):.2f}x** ({', '.join(f'{x:.2f}' for x in ratios)})"
            if ratios else "—")
      if stat == "step_s_median":
        row += [f"{step_s:.2f}", vs]
      else:
        some = next(iter(by_round.values()))
        step_flops = some.get("flops_per_step", some.get("flops_explicit"))
        mfu = flops.mfu(step_flops, 1 / step_s, 1, peaks[peak_dtype(some)] * 1e9)
        row += [f"{step_s:.2f}", f"{some['batch'] * (some['inputs_len'] + some['targets_len']) / step_s:.0f}",
                f"{mfu:.1%}", vs]
    print("| " + " | ".join(row) + " |")

if __name__ == "__main__":
  main()
