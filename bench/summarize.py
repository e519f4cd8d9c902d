#!/usr/bin/env python
"""Medians of the RESULT lines of a decode_vs_peer.sh log, grouped by framework and settings.

  python bench/summarize.py /tmp/decode_vs_peer.log

`vs_peer` is the median over rounds of (ours / the peer in the same round): the
machine is shared, so a ratio within one round is steadier than a ratio of medians.
"""
import collections
import json
import statistics
import sys


def key_of(r):
  if r["framework"] != "jax":
    return r["framework"]
  return (f"jax-{r['dtype']}-{r['matmul']}-steps-{r.get('step_dtype', r['dtype'])}"
          f"-weights-{r.get('weights', 'plain')}")


def main():
  groups = collections.defaultdict(list)  # key -> [(round, result)]
  loads, round_no = [], 0
  for line in open(sys.argv[1]):
    if line.startswith("# round"):
      round_no += 1
    if line.startswith("# ") and "load:" in line:
      loads.append(line.split("load:")[1].split()[0])
    if line.startswith("RESULT "):
      r = json.loads(line[len("RESULT "):])
      groups[key_of(r)].append((round_no, r))
  peer = {rnd: r["new_tokens_per_s_median"] for rnd, r in groups.get("torch-eager", [])}
  rows = {}
  for key, entries in groups.items():
    rs = [r for _, r in entries]
    tps = statistics.median(r["new_tokens_per_s_median"] for r in rs)
    ratios = [r["new_tokens_per_s_median"] / peer[rnd] for rnd, r in entries if rnd in peer]
    rows[key] = dict(
        runs=len(rs), new_tokens_per_s=round(tps, 1),
        gen_s=round(statistics.median(r["gen_s_median"] for r in rs), 3),
        encoder_s=round(statistics.median(r["encoder_s_median"] for r in rs), 3),
        decode_ms_per_step=round(statistics.median(r["decode_ms_per_step_median"] for r in rs), 2),
        vs_peer=round(statistics.median(ratios), 2) if ratios else None,
        vs_peer_per_round=[round(x, 2) for x in ratios])
  print("RESULT " + json.dumps(dict(load_1min=loads, results=rows)))
  for key, row in rows.items():
    print(f"{key:48s} {row['new_tokens_per_s']:7.1f} new tok/s  {row['decode_ms_per_step']:6.2f} "
          f"ms/step  encoder {row['encoder_s'] * 1e3:5.0f} ms  x{row['vs_peer']} vs peer "
          f"{row['vs_peer_per_round']} ({row['runs']} runs)")


if __name__ == "__main__":
  main()
