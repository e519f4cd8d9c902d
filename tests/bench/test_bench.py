"""The benchmarks measure what users run, and bench/run.py's table does its arithmetic right."""
import importlib.util
import json
import os
import sys

import pytest

from prosocial_jax.inference import decoding
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.training import optimizers, steps, train_state

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


def load(name):
  spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_train_step_benchmark_runs_the_trainers_step(monkeypatch, capsys, tmp_path):
  bench = load("train_step_speed")
  # The trainer's own step, state, model contract and optimizers, not copies.
  assert bench.make_train_step is steps.make_train_step
  assert bench.TrainState is train_state.TrainState
  assert bench.EncoderDecoderModel is EncoderDecoderModel
  assert bench.OPTIMIZERS == {"adafactor": optimizers.adafactor, "adam": optimizers.adam}
  built = []
  monkeypatch.setattr(bench, "make_train_step",
                      lambda *a, **k: built.append(a) or steps.make_train_step(*a, **k))
  monkeypatch.setattr(sys, "argv", ["train_step_speed.py", "--size", "tiny", "--batch", "2",
                                    "--inputs-len", "16", "--targets-len", "8", "--steps", "2",
                                    "--warmup", "1", "--modes", "f32", "bf16_fast",
                                    "--profile-dir", str(tmp_path)])
  bench.main()
  lines = [json.loads(l[len("RESULT "):]) for l in capsys.readouterr().out.splitlines()
           if l.startswith("RESULT ")]
  assert [r["mode"] for r in lines] == ["f32", "bf16_fast"]
  assert [type(model) for model, _ in built] == [EncoderDecoderModel] * 2
  assert all(isinstance(opt, optimizers.Optimizer) for _, opt in built)
  # Same initial parameters and batch: the first step's loss agrees across precisions.
  assert lines[0]["loss"] == pytest.approx(lines[1]["loss"], rel=2e-2)
  assert all(r["tokens_per_s"] > 0 and len(r["step_s_all"]) == 2 for r in lines)
  # --profile-dir: two more steps traced per mode, summarized with the step's HLO.
  for r in lines:
    assert r["profile"]["trace"].startswith(str(tmp_path / r["mode"]))
    assert r["profile"]["steps"] == 2 and r["profile"]["kinds_ms_per_step"]["matmul"] > 0


def test_a_profiler_that_fails_costs_only_the_profile(monkeypatch, capsys, tmp_path):
  bench = load("train_step_speed")

  def no_profiler(*args):
    raise RuntimeError("CUPTI could not be loaded")
  monkeypatch.setattr(bench, "traced_summary", no_profiler)
  monkeypatch.setattr(sys, "argv", ["train_step_speed.py", "--size", "tiny", "--batch", "2",
                                    "--inputs-len", "16", "--targets-len", "8", "--steps", "2",
                                    "--warmup", "1", "--modes", "f32",
                                    "--profile-dir", str(tmp_path)])
  bench.main()
  result = json.loads(next(l for l in capsys.readouterr().out.splitlines()
                           if l.startswith("RESULT "))[len("RESULT "):])
  assert result["profile"] == {"error": "RuntimeError: CUPTI could not be loaded"}
  assert len(result["step_s_all"]) == 2 and result["tokens_per_s"] > 0


def test_decode_benchmark_times_the_projects_greedy_decode(monkeypatch, capsys):
  bench = load("decode_speed")
  calls = []
  real = decoding.greedy_decode
  monkeypatch.setattr(decoding, "greedy_decode", lambda *a, **k: calls.append(k) or real(*a, **k))
  monkeypatch.setattr(sys, "argv", ["decode_speed.py", "--size", "tiny", "--batch", "2",
                                    "--inputs-len", "8", "--new-tokens", "3", "--reps", "1",
                                    "--weights", "int8"])
  bench.main()
  result, = [json.loads(l[len("RESULT "):]) for l in capsys.readouterr().out.splitlines()
             if l.startswith("RESULT ")]
  # compile + warm-up + timed: every generate call went through greedy_decode, packed weights.
  assert len(calls) == 3 and all(k["step_params"] is not None for k in calls)
  assert result["weights"] == "int8" and result["new_tokens_per_s_median"] > 0


def train(step_s, **extra):
  return dict(step_s_median=step_s, flops_per_step=1e9, **extra)


def decode(tokens_per_s):
  return dict(new_tokens_per_s_median=tokens_per_s)


def test_run_table_ratios_are_per_round_against_the_peers_best_setting():
  run = load("run")
  rounds = [
      {"train: peer, fp32": train(2.0), "train: peer, bf16 autocast": train(1.0, bf16_autocast=True),
       "train: ours, bf16_fast": train(0.5, dtype="bfloat16"), "train: ours, f32": train(1.6),
       "decode: peer": decode(100.0), "decode: ours, a": decode(300.0)},
      {"train: peer, fp32": train(1.5), "train: peer, bf16 autocast": train(2.0, bf16_autocast=True),
       "train: ours, bf16_fast": train(1.0, dtype="bfloat16"), "train: ours, f32": train(3.0),
       "decode: peer": decode(200.0), "decode: ours, a": decode(200.0)},
      {"train: peer, fp32": train(1.2), "train: peer, bf16 autocast": train(0.9, bf16_autocast=True),
       "train: ours, bf16_fast": train(0.6, dtype="bfloat16"), "train: ours, f32": train(0.9),
       "decode: peer": decode(100.0), "decode: ours, a": decode(250.0)},
  ]
  report = run.summarise(rounds, {"fp32": 100.0, "bf16": 400.0}, {"batches_per_s": 20.0})
  fast = report["rows"]["train: ours, bf16_fast"]
  # Per round: peer best 1.0 / 0.5, 1.5 / 1.0, 0.9 / 0.6 -> 2.0, 1.5, 1.5; median 1.5.
  assert fast["vs_peer_per_round"] == [2.0, 1.5, 1.5]
  assert report["train_best"] == "train: ours, bf16_fast"
  assert report["train_vs_peer_best"] == pytest.approx(1.5)
  assert (fast["median"], fast["min"], fast["max"]) == (0.6, 0.5, 1.0)
  assert fast["mfu"] == pytest.approx(1e9 / 0.6 / 1e9 / 400.0)  # against the bf16 peak
  assert report["rows"]["train: ours, f32"]["mfu"] == pytest.approx(1 / 1.6 / 100.0)
  assert report["decode_vs_peer"] == pytest.approx(2.5)  # 3.0, 1.0, 2.5
  assert report["input_vs_train_step"] == pytest.approx(20.0 * 0.6)


def test_run_gives_ours_and_the_peer_one_environment(monkeypatch):
  run = load("run")
  seen = []
  monkeypatch.setattr(run.subprocess, "run",
                      lambda cmd, **kw: seen.append(kw["env"]) or run.subprocess.CompletedProcess(
                          cmd, 0, stdout='RESULT {"x": 1}\n', stderr=""))
  assert run.results(["peer"]) == run.results(["ours"]) == [{"x": 1}]
  assert seen[0] is seen[1] is run.CHILD_ENV
  monkeypatch.setenv("PROSOCIAL_JAX_HUGEPAGES", "1")
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  forced = run.host_memory.environment()
  glibc = run.host_memory.glibc_version()
  assert ("glibc.malloc.hugetlb=1" in forced.get("GLIBC_TUNABLES", "")) == (glibc >= (2, 35))
  monkeypatch.setenv("PROSOCIAL_JAX_HUGEPAGES", "0")
  assert "GLIBC_TUNABLES" not in run.host_memory.environment()


def test_gpu_check_compares_an_ab_run_with_its_baseline_at_the_same_batch():
  check = load("gpu_check")
  base = {"name": "t5_large_bf16", "batch": 64, "step_s_median": 0.45, "first_loss": 10.0}
  fused = {"name": "t5_large_bf16_cudnn_attention", "batch": 64, "step_s_median": 0.36,
           "first_loss": 10.002}
  assert check.comparison(fused, [base]) == {
      "baseline": "t5_large_bf16", "speedup": 1.25, "first_loss_relative_difference": 2e-4}
  assert check.comparison(dict(fused, batch=32), [base]) is None  # halved after an OOM
  assert check.comparison(fused, []) is None and check.comparison(base, [fused]) is None
  # Every A/B names a measurement of the list, and runs after it.
  names = [name for name, _ in check.FULL]
  for name, baseline in check.BASELINES.items():
    assert names.index(baseline) < names.index(name)
