#!/usr/bin/env python
"""Medians of the RESULT lines of a decode_vs_peer.sh log, grouped by framework and dtype.

  python bench/summarize.py /tmp/decode_vs_peer.log
"""
import collections
import json
import statistics
import sys


def main():
  groups = collections.defaultdict(list)
  loads = []
  for line in open(sys.argv[1]):
    if line.startswith("# ") and "load:" in line:
      loads.append(line.split("load:")[1].split()[0])
    if not line.startswith("RESULT "):
      continue
    r = json.loads(line[len("RESULT "):])
    key = (r["framework"] if r["framework"] != "jax" else
           f"jax-{r['dtype']}-{r['matmul']}-steps-{r.get('step_dtype', r['dtype'])}")
    groups[key].append(r)
  peer = groups.get("torch-eager")
  peer_tps = statistics.median(r["new_tokens_per_s_median"] for r in peer) if peer else None
  rows = {}
  for key, rs in groups.items():
    tps = statistics.median(r["new_tokens_per_s_median"] for r in rs)
    rows[key] = dict(
        runs=len(rs), new_tokens_per_s=round(tps, 1),
        gen_s=round(statistics.median(r["gen_s_median"] for r in rs), 3),
        encoder_s=round(statistics.median(r["encoder_s_median"] for r in rs), 3),
        decode_ms_per_step=round(statistics.median(r["decode_ms_per_step_median"] for r in rs), 2),
        vs_peer=round(tps / peer_tps, 2) if peer_tps else None)
  print("RESULT " + json.dumps(dict(load_1min=loads, results=rows)))
  for key, row in rows.items():
    print(f"{key:28s} {row['new_tokens_per_s']:8.1f} new tok/s  {row['decode_ms_per_step']:7.2f} "
          f"ms/step  encoder {row['encoder_s'] * 1e3:6.0f} ms  x{row['vs_peer']} vs peer "
          f"({row['runs']} runs)")


if __name__ == "__main__":
  main()
