"""Entry point: one of our checkpoints as a Hugging Face model folder.

  python -m prosocial_jax.export --model_dir=MODEL_DIR --output_dir=OUT
      [--step=N|latest|best] [--max_shard_size=5GB] [--overwrite]

The model config and the vocabulary come from the checkpoint itself (no gin).
T5 (v1.0, v1.1) becomes `T5ForConditionalGeneration`, Prost
`BlenderbotForConditionalGeneration`; OUT then loads with transformers:

  tokenizer = AutoTokenizer.from_pretrained(OUT)
  model = AutoModelForSeq2SeqLM.from_pretrained(OUT)
  model.generate(**tokenizer(["..."], return_tensors="pt"), max_new_tokens=64)

A non-empty OUT is left alone unless --overwrite. JAX runs on the CPU
(JAX_PLATFORMS=cpu unless set): exporting never takes an accelerator.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Sequence

from prosocial_jax import user_errors

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}


def parse_size(text: str) -> int:
  """'5GB' / '500MB' / '2GiB' / '1000' -> bytes (transformers' max_shard_size spelling)."""
  m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
  if not m or m.group(2).upper() not in _UNITS:
    raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5GB, 500MB, 2GiB)")
  size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
  if size <= 0:
    raise argparse.ArgumentTypeError(f"a shard size must be positive: {text!r}")
  return size


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m prosocial_jax.export",
                                   description="Export a checkpoint as a Hugging Face model.")
  parser.add_argument("--model_dir", required=True, help="the run's MODEL_DIR (local or gs://)")
  parser.add_argument("--output_dir", required=True, help="the Hugging Face folder to write")
  parser.add_argument("--step", default="latest",
                      help="a step number, 'latest' (default) or 'best' (best validation "
                           "perplexity recorded with a checkpoint)")
  parser.add_argument("--max_shard_size", type=parse_size, default="5GB",
                      help="largest safetensors file before sharding (default 5GB)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace what is in --output_dir")
  return parser.parse_args(list(argv))


def main(argv=None) -> None:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from prosocial_jax.checkpoints.exporters import ExportError, export_checkpoint
  from prosocial_jax.checkpoints.stored import CheckpointNotFoundError
  output_dir = args.output_dir if "://" in args.output_dir else os.path.abspath(
      os.path.expanduser(args.output_dir))
  with user_errors.exit_on((ExportError, CheckpointNotFoundError)):
    summary = export_checkpoint(args.model_dir, output_dir, step=args.step,
                                overwrite=args.overwrite, max_shard_bytes=args.max_shard_size,
                                progress=lambda message: print(message, flush=True))
  print(f"Exported step {summary['step']} to {output_dir}: {', '.join(summary['files'])}")


if __name__ == "__main__":
  main()
