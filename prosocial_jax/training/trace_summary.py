"""Where a traced step's time went: a jax.profiler trace summarized by kind of work.

`summarize_trace` reads the `*.trace.json.gz` that `jax.profiler` writes and adds up
per step the time of each operation (XLA:CPU thunks, GPU kernels), by kind of work
(matmul, attention, collective, copy, reduction, the rest) and by operation, each
with where in the model it comes from when the compiled step's HLO text is given.
Used by the trainer's `profile_steps` (`profiling.py`), `bench/train_step_speed.py
--profile-dir` and `bench/gpu_check.py`; imports no jax (gpu_check's parent process
must not start a client).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
from typing import Any

# Trace events that wrap others (Python frames, the executable, XLA:CPU's executor and
# thread pool) rather than doing work of their own.
WRAPPER_PREFIXES = ("$", "PjitFunction", "ThunkExecutor", "SlinkyThreadPool", "XlaModule",
                    "jit_", "PjRt", "TfrtCpu", "ExecuteHelper")
# Kinds of work by kernel name, where the compiled HLO is not at hand (GPU kernels are
# named after their fusion or library: cuBLAS/cuDNN/NCCL).
KINDS = (
    ("matmul", re.compile(r"dot|gemm|cublas|cutlass|nvjet|xmma|wgmma|matmul|convolution",
                          re.I)),
    ("attention", re.compile(r"cudnn|fmha|flash", re.I)),
    ("collective", re.compile(r"nccl|all-reduce|all-gather|reduce-scatter|all-to-all|"
                              r"collective-permute", re.I)),
    ("copy", re.compile(r"memcpy|memset|^copy|transpose", re.I)),
    ("reduction", re.compile(r"reduce|scatter", re.I)),
)
OTHER = "elementwise and other"
# XLA opcodes that only move or reshape data.
_LAYOUT_OPS = {"copy", "transpose", "bitcast", "reshape", "broadcast", "slice", "concatenate",
               "dynamic-slice", "dynamic-update-slice", "pad", "parameter", "constant", "tuple",
               "get-tuple-element", "iota", "convert", "bitcast-convert"}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([a-z][a-z0-9\-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_TARGET = re.compile(r'custom_call_target="([^"]*)"')


def _short_source(op_name: str) -> str:
  """'jit(train_step)/transpose(jvp(Transformer))/Transformer.decode/decoder/logits_dense/
  dot_general' → 'backward: decoder/logits_dense/dot_general'."""
  parts = op_name.split("/")
  backward = any(p.startswith("transpose(") for p in parts)
  parts = [p for p in parts if not p.startswith(("jit(", "jvp(", "transpose(", "Transformer."))]
  return ("backward: " if backward else "") + "/".join(parts[-3:])


def _kind_of_name(name: str) -> str:
  for kind, pattern in KINDS:
    if pattern.search(name):
      return kind
  return OTHER


def _kind_of_opcodes(opcodes: set[str]) -> str:
  for opcode in opcodes:
    if opcode.startswith("custom-call") and _kind_of_name(opcode) != OTHER:
      return _kind_of_name(opcode)
  if opcodes & {"dot", "convolution"}:
    return "matmul"
  if opcodes & {"all-reduce", "all-gather", "reduce-scatter", "all-to-all",
                "collective-permute"}:
    return "collective"
  if opcodes & {"reduce", "reduce-window", "scatter", "select-and-scatter"}:
    return "reduction"
  if opcodes <= _LAYOUT_OPS and opcodes & {"copy", "transpose", "concatenate", "pad",
                                           "dynamic-update-slice", "slice", "dynamic-slice"}:
    return "copy"
  return OTHER


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
  """Each instruction of a compiled HLO module → (the kind of work it does, where in the
  model it comes from). A fusion's kind is that of the operations inside it (XLA:CPU's
  `ynn_fusion.N` may hold a dot or a reduction); where: its `op_name` metadata, shortened."""
  bodies: dict[str, list[tuple[str, str, list[str]]]] = {}
  sources: dict[str, str] = {}
  current = None
  for line in hlo_text.splitlines():
    if current is None:
      match = _COMPUTATION.match(line)
      if match:
        current = bodies.setdefault(match.group(1), [])
      continue
    if line.startswith("}"):
      current = None
      continue
    match = _INSTRUCTION.match(line)
    if match:
      opcode = match.group(2)
      target = _TARGET.search(line) if opcode == "custom-call" else None
      if target:  # a library call (cuBLAS, cuDNN, ...): its target says what it does
        opcode = f"custom-call:{target.group(1)}"
      current.append((match.group(1), opcode, _CALLS.findall(line)))
      op_name = _OP_NAME.search(line)
      if op_name:
        sources[match.group(1)] = _short_source(op_name.group(1))

  opcodes_cache: dict[str, set[str]] = {}

  def opcodes_of(computation: str, depth: int = 0) -> set[str]:
    if computation not in opcodes_cache:
      found: set[str] = set()
      for _, opcode, calls in bodies.get(computation, []):
        found.add(opcode)
        if opcode == "fusion" and depth < 8:
          for called in calls:
            found |= opcodes_of(called, depth + 1)
      opcodes_cache[computation] = found - {"fusion"}
    return opcodes_cache[computation]

  found = {}
  for body in bodies.values():
    for name, opcode, calls in body:
      if opcode == "fusion":
        inner = set().union(*(opcodes_of(c) for c in calls)) if calls else set()
        kind = _kind_of_opcodes(inner)
      else:
        kind = _kind_of_opcodes({opcode})
      found[name] = (kind, sources.get(name, ""))
  return found


def _latest_trace_file(log_dir: str) -> str | None:
  found = glob.glob(os.path.join(log_dir, "plugins", "profile", "*", "*.trace.json.gz"))
  return max(found, key=os.path.getmtime) if found else None


def summarize_trace(log_dir: str, steps: int, top: int = 15,
                    hlo_text: str | None = None) -> dict[str, Any] | None:
  """Where a traced step's time went, from the newest `*.trace.json.gz` under `log_dir`.

  Device timelines (a process named `/device:…`, GPU and TPU) are summarized when
  there are any, else the host's XLA:CPU threads. Times are per step, summed over
  the threads or streams used (listed in `threads`), so on a multi-threaded CPU
  they add up to more than the step's wall time. Kinds of work come from the compiled
  step's `hlo_text` when given, else from the names. None when no trace file is found.
  """
  known = hlo_instructions(hlo_text) if hlo_text else {}
  path = _latest_trace_file(log_dir)
  if path is None:
    return None
  with gzip.open(path, "rt") as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  process_names, thread_names = {}, {}
  for e in events:
    if e.get("ph") == "M" and e.get("name") == "process_name":
      process_names[e["pid"]] = e["args"]["name"]
    elif e.get("ph") == "M" and e.get("name") == "thread_name":
      thread_names[(e["pid"], e["tid"])] = e["args"]["name"]
  devices = {pid for pid, name in process_names.items() if name.startswith("/device:")}
  work = [e for e in events if e.get("ph") == "X" and "dur" in e
          and (e["pid"] in devices if devices else True)
          and not str(e.get("name", "")).startswith(WRAPPER_PREFIXES)]
  if devices:  # GPU kernels on streams, or a TPU's op line; not the module and step lines
    line = lambda e: thread_names.get((e["pid"], e["tid"]), "")  # noqa: E731
    work = ([e for e in work if line(e).startswith("Stream")]
            or [e for e in work if line(e) == "XLA Ops"] or work)
  else:  # XLA's operations, not the waits and rendezvous of the runtime around them
    work = [e for e in work if e.get("args", {}).get("hlo_op")] or work
  by_op, counts, by_kind = collections.Counter(), collections.Counter(), collections.Counter()
  threads = set()
  for e in work:
    op = e.get("args", {}).get("hlo_op") or re.sub(r"\.\d+$", "", e["name"])
    by_op[op] += e["dur"]
    counts[op] += 1
    by_kind[known[op][0] if op in known else _kind_of_name(op)] += e["dur"]
    threads.add(thread_names.get((e["pid"], e["tid"]), str(e["tid"])))
  per_step_ms = lambda us: round(us / steps / 1e3, 3)  # noqa: E731
  total = sum(by_op.values())
  return {
      "trace": path,
      "timeline": "device" if devices else "host",
      "threads": sorted(threads),
      "steps": steps,
      "busy_ms_per_step": per_step_ms(total),
      "kinds_ms_per_step": {k: per_step_ms(v) for k, v in by_kind.most_common()},
      "top_ops": [{"op": op, "kind": known[op][0] if op in known else _kind_of_name(op),
                   "source": known.get(op, ("", ""))[1],
                   "ms_per_step": per_step_ms(us), "share": round(us / total, 4) if total else 0.0,
                   "calls_per_step": round(counts[op] / steps, 2)}
                  for op, us in by_op.most_common(top)],
  }


def format_summary(summary: dict[str, Any], top: int = 8) -> str:
  kinds = ", ".join(f"{k} {v:.1f}" for k, v in summary["kinds_ms_per_step"].items())
  ops = "; ".join(f"{o['op']}{' (' + o['source'] + ')' if o['source'] else ''} "
                  f"{o['ms_per_step']:.1f} ms ({100 * o['share']:.0f}%)"
                  for o in summary["top_ops"][:top])
  return (f"{summary['timeline']} busy {summary['busy_ms_per_step']:.1f} ms/step "
          f"(summed over {len(summary['threads'])} threads/streams) | ms/step by kind: "
          f"{kinds} | top: {ops}")
