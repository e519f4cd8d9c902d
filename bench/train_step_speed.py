#!/usr/bin/env python
"""Train-step speed and MFU of our models per dtype / matmul option (the peer: hf_t5_train.py).

  python bench/train_step_speed.py --size small --batch 8 --inputs-len 128 --targets-len 64
  python bench/train_step_speed.py --family prost --size 2_7b --optimizer adam ...  (GPU)

The step is the trainer's: `EncoderDecoderModel.loss_fn` differentiated by
`training.steps.make_train_step`, jitted with the state donated, on a
`train_state.TrainState`; the optimizer is Adafactor with T5X's defaults
(factored, no momentum, decay 0.8, clipping 1.0, parameter scaling), learning
rate 1e-3 (`--optimizer adam`: the trainer's `adam`, Prost's). Random tokens, one device, median of --steps timed steps after
--warmup. Modes: f32 (float32 / XLA), f32_fast (float32 with the custom-VJP matmul),
bf16_xla (flax dtype only), bf16_fast (bfloat16 with the custom-VJP matmul). `--family` picks T5 v1.1 / v1.0 or Prost,
`--remat` the layers' rematerialisation policy, `--attention-kernel cudnn` cuDNN's flash
attention (GPU, bf16 modes), `--dropout` the config's dropout rate (default 0; the
result names the PRNG, `JAX_DEFAULT_PRNG_IMPL`); on an accelerator the result
also carries the device's peak memory (`memory_stats()["peak_bytes_in_use"]`).
`--profile-dir DIR` then traces --profile-steps more steps per mode with
`jax.profiler` into DIR/<mode> and adds the trace's summary (`training.trace_summary`:
time per step by kind of work and the busiest operations) to the result as `profile`.

MFU = `training.flops.train_step_flops` (explicit matmul count, attention
included, = the peer's `flops_explicit`) x steps/s over the peak: the chip's
from `training.flops.peak_flops_per_device`, or --peak-gflops-{float32,bfloat16}
(on a CPU, a measured matmul rate: `bench/run.py` measures this machine's
best from ../shared/bench/matmul_peak.py). Without a peak MFU is null.
Prints one `RESULT {json}` line per mode.
"""
import argparse
import json
import os
import statistics
import time

import flax.linen as nn
import jax
import numpy as np

from prosocial_jax import host_memory
from prosocial_jax.inference.model import EncoderDecoderModel
from prosocial_jax.models import prost_config, t5_1_0_config, t5_1_1_config
from prosocial_jax.training import flops, optimizers, trace_summary
from prosocial_jax.training.steps import make_train_step
from prosocial_jax.training.train_state import TrainState

MODES = {"f32": ("float32", "xla"), "f32_fast": ("float32", "f32_fast"),
         "bf16_xla": ("bfloat16", "xla"), "bf16_fast": ("bfloat16", "bf16_fast")}
FAMILIES = {"t5_1_1": t5_1_1_config, "t5_1_0": t5_1_0_config, "prost": prost_config}
# The published vocabularies (T5's 32128 rows, BlenderBot's 8008); `tiny` has none of its own.
VOCAB = {"t5_1_1": 32128, "t5_1_0": 32128, "prost": 8008}
OPTIMIZERS = {"adafactor": optimizers.adafactor, "adam": optimizers.adam}


def dropout_fields(family: str, rate: float) -> dict:
  return dict(dropout_rate=rate, **({"attention_dropout_rate": rate} if family == "prost" else {}))


def random_batch(batch, inputs_len, targets_len, vocab=VOCAB["t5_1_1"], seed=0):
  rng = np.random.default_rng(seed)
  targets = rng.integers(2, vocab, (batch, targets_len), dtype=np.int32)
  return {"encoder_input_tokens": rng.integers(2, vocab, (batch, inputs_len), dtype=np.int32),
          "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
          "decoder_target_tokens": targets,
          "decoder_loss_weights": np.ones((batch, targets_len), np.float32)}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--family", choices=list(FAMILIES), default="t5_1_1")
  p.add_argument("--size", default="small")
  p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adafactor")
  p.add_argument("--remat", default="none", help="the config's remat_policy")
  p.add_argument("--scan", action="store_true", help="scan_layers=True (faster compiles)")
  p.add_argument("--attention-kernel", default="xla", help="the config's attention_kernel")
  p.add_argument("--dropout", type=float, default=0.0,
                 help="the config's dropout_rate (Prost: also attention_dropout_rate)")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--inputs-len", type=int, default=128)
  p.add_argument("--targets-len", type=int, default=64)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
  p.add_argument("--profile-dir", default=None,
                 help="after timing, trace --profile-steps steps per mode into DIR/<mode>")
  p.add_argument("--profile-steps", type=int, default=2)
  p.add_argument("--peak-gflops-float32", type=float, default=None)
  p.add_argument("--peak-gflops-bfloat16", type=float, default=None)
  args = p.parse_args()
  given_peaks = {"float32": args.peak_gflops_float32, "bfloat16": args.peak_gflops_bfloat16}
  device_kind = jax.devices()[0].device_kind
  vocab = VOCAB[args.family]
  batch = jax.device_put(random_batch(args.batch, args.inputs_len, args.targets_len, vocab))
  key = jax.random.key(0)
  params = None
  for mode in args.modes:
    dtype, matmul = MODES[mode]
    config = FAMILIES[args.family](args.size, vocab_size=vocab, dtype=dtype, matmul=matmul,
                                   remat_policy=args.remat, scan_layers=args.scan,
                                   attention_kernel=args.attention_kernel,
                                   **dropout_fields(args.family, args.dropout))
    model = EncoderDecoderModel(config)
    if params is None:  # parameters are float32 in every mode: initialise once
      params = jax.jit(lambda r, b: nn.unbox(model.init(r, b)))(key, batch)
      parameter_count = sum(x.size for x in jax.tree.leaves(params))
    optimizer = OPTIMIZERS[args.optimizer](learning_rate=1e-3)
    step = jax.jit(make_train_step(model, optimizer), donate_argnums=(0,))
    state = TrainState.create(jax.tree.map(lambda x: x.copy(), params), optimizer)

    t0 = time.perf_counter()
    state, metrics = jax.block_until_ready(step(state, batch, key))
    first_step_s = time.perf_counter() - t0
    first_loss = float(metrics["loss"])  # the initial parameters': kernels compare on it
    for _ in range(args.warmup - 1):
      state, metrics = jax.block_until_ready(step(state, batch, key))
    times = []
    for _ in range(args.steps):
      t0 = time.perf_counter()
      state, metrics = jax.block_until_ready(step(state, batch, key))
      times.append(time.perf_counter() - t0)

    profile = None
    if args.profile_dir:
      try:
        state, profile = traced_summary(step, state, batch, key, args.profile_steps,
                                        os.path.join(args.profile_dir, mode))
      except Exception as error:  # a profiler that cannot run must not cost the timing
        profile = {"error": f"{type(error).__name__}: {error}"}
    median = statistics.median(times)
    tokens = args.batch * (args.inputs_len + args.targets_len)
    step_flops = flops.train_step_flops(config, args.batch, args.inputs_len, args.targets_len)
    if given_peaks[dtype] is not None:
      peak, peak_source = given_peaks[dtype] * 1e9, "given"
    else:
      peak, peak_source = flops.peak_flops_per_device(device_kind, dtype), "table"
    utilisation = flops.mfu(step_flops, 1 / median, 1, peak)
    print("RESULT " + json.dumps(dict(
        framework="jax", jax=jax.__version__, device_kind=device_kind, family=args.family,
        size=args.size, mode=mode, dtype=dtype, matmul=matmul, remat=args.remat, scan=args.scan,
        attention_kernel=args.attention_kernel, dropout=args.dropout,
        prng_impl=str(jax.config.jax_default_prng_impl),
        batch=args.batch, inputs_len=args.inputs_len, targets_len=args.targets_len,
        optimizer=args.optimizer, parameters=parameter_count,
        first_step_s=round(first_step_s, 2), step_s_median=round(median, 4),
        step_s_min=round(min(times), 4), step_s_all=[round(t, 4) for t in times],
        tokens_per_s=round(tokens / median, 1), flops_per_step=step_flops,
        achieved_gflops=round(step_flops / median / 1e9, 2),
        peak_gflops=None if peak is None else round(peak / 1e9, 1), peak_source=peak_source,
        mfu=None if utilisation is None else round(utilisation, 4),
        peak_memory_gib=peak_memory_gib(),
        first_loss=round(first_loss, 4), loss=round(float(metrics["loss"]), 4),
        profile=profile)), flush=True)
    del state, step


def traced_summary(step, state, batch, key, steps, log_dir):
  """(state, summary) after `steps` more steps traced into log_dir."""
  with jax.profiler.trace(log_dir):
    for _ in range(steps):
      state, _ = jax.block_until_ready(step(state, batch, key))
  hlo_text = step.lower(state, batch, key).compile().as_text()
  return state, trace_summary.summarize_trace(log_dir, steps, top=25, hlo_text=hlo_text)


def peak_memory_gib():
  """The first device's peak allocation so far (process-wide), or None where the
  backend keeps no statistics (XLA:CPU)."""
  stats = jax.devices()[0].memory_stats()
  if not stats or "peak_bytes_in_use" not in stats:
    return None
  return round(stats["peak_bytes_in_use"] / 2**30, 2)


if __name__ == "__main__":
  host_memory.reexec_with_hugepages()  # as the train / eval commands do
  main()
