"""Profiling train steps: the trace summary (kinds of work from the HLO, per step, device
timelines first) and the trainer's `profile_steps`."""

import glob
import gzip
import json
import logging
import os
import types

import jax
import jax.numpy as jnp
import pytest

from prosocial_jax.training import profiling
from prosocial_jax.training.trace_summary import (format_summary, hlo_instructions,
                                                  summarize_trace)

from .conftest import train_on_sample

HLO = """\
HloModule jit_train_step

%fused_dot (p0: f32[8,16], p1: f32[16,4]) -> f32[8,4] {
  %p0 = f32[8,16]{1,0} parameter(0)
  %p1 = f32[16,4]{1,0} parameter(1)
  ROOT %dot.1 = f32[8,4]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_copy (p0: f32[4,8]) -> f32[8,4] {
  %p0 = f32[4,8]{1,0} parameter(0)
  ROOT %transpose.2 = f32[8,4]{0,1} transpose(%p0), dimensions={1,0}
}

%region_add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.3 = f32[] add(%a, %b)
}

%fused_sum (p0: f32[8,4]) -> f32[4] {
  %p0 = f32[8,4]{1,0} parameter(0)
  %c = f32[] constant(0)
  ROOT %reduce.4 = f32[4]{0} reduce(%p0, %c), dimensions={0}, to_apply=%region_add
}

%fused_outer (p0: f32[8,16], p1: f32[16,4]) -> f32[8,4] {
  %p0 = f32[8,16]{1,0} parameter(0)
  %p1 = f32[16,4]{1,0} parameter(1)
  %inner = f32[8,4]{1,0} fusion(%p0, %p1), kind=kOutput, calls=%fused_dot
  ROOT %tanh.5 = f32[8,4]{1,0} tanh(%inner)
}

ENTRY %main (x: f32[8,16], w: f32[16,4], t: f32[4,8]) -> (f32[8,4], f32[4]) {
  %x = f32[8,16]{1,0} parameter(0)
  %w = f32[16,4]{1,0} parameter(1)
  %t = f32[4,8]{1,0} parameter(2)
  %ynn_fusion.7 = f32[8,4]{1,0} fusion(%x, %w), kind=kCustom, calls=%fused_dot, metadata={op_name="jit(train_step)/transpose(jvp(Transformer))/Transformer.decode/decoder/logits_dense/dot_general"}
  %ynn_fusion.8 = f32[4]{0} fusion(%ynn_fusion.7), kind=kCustom, calls=%fused_sum, metadata={op_name="jit(train_step)/reduce_sum"}
  %transpose_fusion = f32[8,4]{0,1} fusion(%t), kind=kLoop, calls=%fused_copy
  %nested_fusion = f32[8,4]{1,0} fusion(%x, %w), kind=kLoop, calls=%fused_outer
  %tanh.9 = f32[8,4]{1,0} tanh(%nested_fusion)
  %custom-call.10 = (f32[8,4]{1,0}, s8[0]{0}) custom-call(%x, %w), custom_call_target="__cublas$gemm"
  %custom-call.11 = f32[8,4]{1,0} custom-call(%x, %w), custom_call_target="__cudnn$fmhaSoftmax"
  %custom-call.12 = f32[8,4]{1,0} custom-call(%x), custom_call_target="SliceToDynamic"
  ROOT %tuple = (f32[8,4]{1,0}, f32[4]{0}) tuple(%tanh.9, %ynn_fusion.8)
}
"""


def test_hlo_instructions_name_the_work_inside_each_fusion():
  found = hlo_instructions(HLO)
  assert found["ynn_fusion.7"] == ("matmul", "backward: decoder/logits_dense/dot_general")
  assert found["ynn_fusion.8"] == ("reduction", "reduce_sum")
  assert found["transpose_fusion"][0] == "copy"
  assert found["nested_fusion"][0] == "matmul"  # a dot inside a fusion inside a fusion
  assert found["tanh.9"][0] == "elementwise and other"
  # GPU library calls by their target: cuBLAS, cuDNN's fused attention, anything else.
  assert found["custom-call.10"][0] == "matmul"
  assert found["custom-call.11"][0] == "attention"
  assert found["custom-call.12"][0] == "elementwise and other"


def _write_trace(log_dir, events):
  folder = os.path.join(log_dir, "plugins", "profile", "2026_12_01_00_00_00")
  os.makedirs(folder)
  with gzip.open(os.path.join(folder, "host.trace.json.gz"), "wt") as f:
    json.dump({"traceEvents": events}, f)


def _meta(pid, tid, process, thread):
  return [{"ph": "M", "pid": pid, "name": "process_name", "args": {"name": process}},
          {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": thread}}]


def _op(pid, tid, name, dur_us, hlo_op=None):
  return {"ph": "X", "pid": pid, "tid": tid, "ts": 0, "dur": dur_us, "name": name,
          "args": {"hlo_op": hlo_op} if hlo_op else {}}


def test_host_trace_summary_per_step_with_the_hlo(tmp_path):
  _write_trace(str(tmp_path), [
      *_meta(1, 10, "/host:CPU", "tf_XLAEigen/1"),
      _op(1, 10, "ThunkExecutor::Execute", 99_000),  # a wrapper: not counted
      _op(1, 10, "$train.py:12 step", 99_000),
      _op(1, 10, "Wait: pending_threads=1/2", 99_000),  # the runtime waiting: no HLO op
      *[_op(1, 10, "ynn_fusion.7", 6_000, "ynn_fusion.7") for _ in range(2)],
      *[_op(1, 10, "ynn_fusion.8", 1_000, "ynn_fusion.8") for _ in range(2)],
      *[_op(1, 10, "transpose_fusion", 3_000, "transpose_fusion") for _ in range(2)],
  ])
  summary = summarize_trace(str(tmp_path), steps=2, hlo_text=HLO)
  assert summary["timeline"] == "host"
  assert summary["busy_ms_per_step"] == 10.0
  assert summary["kinds_ms_per_step"] == {"matmul": 6.0, "copy": 3.0, "reduction": 1.0}
  top = summary["top_ops"][0]
  assert top == {"op": "ynn_fusion.7", "kind": "matmul",
                 "source": "backward: decoder/logits_dense/dot_general",
                 "ms_per_step": 6.0, "share": 0.6, "calls_per_step": 1.0}
  # Without the HLO a ynn_fusion says nothing about its work.
  assert summarize_trace(str(tmp_path), steps=2)["kinds_ms_per_step"]["elementwise and other"] == 7.0
  assert "matmul 6.0" in format_summary(summary)


def test_device_streams_are_summarized_not_the_host_or_the_op_lines(tmp_path):
  _write_trace(str(tmp_path), [
      *_meta(1, 10, "/host:CPU", "python"),
      *_meta(2, 20, "/device:GPU:0", "Stream #13(Compute)"),
      {"ph": "M", "pid": 2, "tid": 21, "name": "thread_name", "args": {"name": "XLA Ops"}},
      _op(1, 10, "launch", 50_000),
      _op(2, 20, "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", 8_000, "dot.3"),
      _op(2, 20, "loop_multiply_fusion", 1_000),
      _op(2, 20, "ncclDevKernel_AllReduce_Sum_f32", 1_000),
      _op(2, 21, "dot.3", 8_000),  # the op line drawn over the kernels
  ])
  summary = summarize_trace(str(tmp_path), steps=1)
  assert summary["timeline"] == "device"
  assert summary["threads"] == ["Stream #13(Compute)"]
  assert summary["busy_ms_per_step"] == 10.0
  assert summary["kinds_ms_per_step"] == {"matmul": 8.0, "elementwise and other": 1.0,
                                          "collective": 1.0}


def test_a_tpu_op_line_is_summarized_not_its_module_and_step_lines(tmp_path):
  _write_trace(str(tmp_path), [
      *_meta(3, 1, "/device:TPU:0", "Steps"),
      {"ph": "M", "pid": 3, "tid": 2, "name": "thread_name", "args": {"name": "XLA Modules"}},
      {"ph": "M", "pid": 3, "tid": 3, "name": "thread_name", "args": {"name": "XLA Ops"}},
      _op(3, 1, "7", 10_000),                          # the step
      _op(3, 2, "jit_train_step(42)", 10_000),         # the module
      _op(3, 3, "convolution.4", 6_000, "convolution.4"),
      _op(3, 3, "fusion.9", 3_000, "fusion.9"),
  ])
  summary = summarize_trace(str(tmp_path), steps=1)
  assert summary["threads"] == ["XLA Ops"] and summary["busy_ms_per_step"] == 9.0
  assert summary["kinds_ms_per_step"] == {"matmul": 6.0, "elementwise and other": 3.0}


def test_no_trace_no_summary(tmp_path):
  assert summarize_trace(str(tmp_path), steps=1) is None


@pytest.mark.parametrize("bad", [(0, 2), (3,), (2, 0), "5", (1.5, 2)])
def test_profile_steps_must_be_a_first_step_and_a_count(bad):
  with pytest.raises(ValueError, match=r"train.profile_steps must be \(first step"):
    profiling.check_profile_steps(bad)


def test_a_run_failing_inside_the_trace_stops_it(tmp_path):
  action = profiling.Profile(2, 3, str(tmp_path / "profile"))
  loop = types.SimpleNamespace(step=1, state=jnp.ones(3))
  action.before_step(loop)  # step 2 is next: the trace starts
  action.close(loop)        # the loop failed in step 2
  action.before_step(loop)  # and it is not started again
  jax.profiler.start_trace(str(tmp_path / "again"))  # raises if a trace were still running
  jax.profiler.stop_trace()
  assert glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))


def test_the_trainer_traces_the_steps_asked_for(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="prosocial_jax")
  train_on_sample(tmp_path, train_steps=5, profile_steps=(3, 2))
  traced = glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*"))
  assert len(traced) == 1
  names = os.listdir(traced[0])
  assert "perfetto_trace.json.gz" in names and any(n.endswith(".xplane.pb") for n in names)
  assert "Profiling steps 3-4 into" in caplog.text
  assert "Profile of steps 3-4 written to" in caplog.text
  summary = summarize_trace(str(tmp_path / "profile"), steps=2)
  assert summary["busy_ms_per_step"] > 0
  line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Profile: "))
  assert "matmul" in line and "host busy" in line
