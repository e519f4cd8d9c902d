"""Entry point: an outside checkpoint turned into one of ours, at step 0.

  python -m prosocial_jax.convert --source=PATH --output_dir=DIR
      [--format=auto|hf_t5|t5x|mesh_tf|hf_blenderbot]
      [--gin_file=gin/models/... [--gin.NAME=VALUE ...]] [--overwrite]

PATH may be local or gs://. The format is detected from the files unless given.
`--gin_file` names the model (its MODEL_CONFIG) for formats that carry no config
(T5X, Mesh-TensorFlow); for the others it is checked against the checkpoint's
own config, and its run settings (dtype, dropout, matmul, remat) are kept. DIR
then holds `checkpoint_0/{state,meta}` and the checkpoint's vocabulary
(`checkpoints/importers/writer.py`); train from it with
`--gin.INITIAL_CHECKPOINT_PATH="'DIR'"`. A non-empty DIR is refused; with
`--overwrite`, the checkpoints and vocabulary/ in it are replaced (a folder
holding anything else is still refused).

Memory: tensors stream from the source one at a time, but the output is one
orbax save of the whole parameter tree, which the writing host holds in float32
first: ~4 bytes per parameter plus a few tensors in flight (T5-large ~3 GB;
T5-11B / Delphi ~45 GB of host memory; measured in writer.py). JAX runs on the
CPU here (JAX_PLATFORMS=cpu unless set), so converting never takes an
accelerator from a job using it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Sequence

import gin

from prosocial_jax import gin_utils, user_errors

FORMATS = ("auto", "hf_t5", "t5x", "mesh_tf", "hf_blenderbot")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  """(options, gin bindings from --gin.NAME=VALUE and --gin_bindings)."""
  parser = argparse.ArgumentParser(
      prog="python -m prosocial_jax.convert",
      description="Convert an outside checkpoint to ours.",
      epilog="--gin.NAME=VALUE  one gin binding on the --gin_file's model (strings need "
             "inner quotes), e.g. --gin.t5_1_0_config.dtype=\"'bfloat16'\"")
  parser.add_argument("--source", required=True, help="checkpoint folder (local or gs://)")
  parser.add_argument("--output_dir", required=True, help="folder for checkpoint_0/")
  parser.add_argument("--format", default="auto", choices=FORMATS)
  parser.add_argument("--gin_file", action="append", default=[],
                      help="model config (MODEL_CONFIG), e.g. gin/models/t5_1_0/11b.gin")
  parser.add_argument("--gin_bindings", action="append", default=[])
  parser.add_argument("--gin_search_paths", default="")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace the checkpoints already in --output_dir")
  args, rest = parser.parse_known_args(list(argv))
  bindings = gin_utils.gin_bindings(parser, args.gin_bindings, rest)
  if bindings and not args.gin_file:
    parser.error("--gin.NAME=VALUE needs a --gin_file naming the model")
  return args, bindings


@gin.configurable(module="prosocial_jax.convert")
def model(config):
  return config


def model_config(gin_files: Sequence[str], bindings: Sequence[str], search_paths: str = ""):
  """The MODEL_CONFIG the gin files define."""
  from prosocial_jax import models  # noqa: F401  (registers the model configurables)

  gin.clear_config()
  gin_utils.parse_gin(gin_files, [*bindings, "prosocial_jax.convert.model.config = %MODEL_CONFIG"],
                      [p for p in search_paths.split(",") if p])
  return model()


class _Progress:
  """A line every few seconds (and at the end) while tensors are read."""

  def __init__(self, every_s: float = 5.0):
    self.start = self.last = time.monotonic()
    self.every_s = every_s

  def __call__(self, done: int, total: int, nbytes: int) -> None:
    now = time.monotonic()
    if done == total or now - self.last >= self.every_s:
      self.last = now
      print(f"  {done}/{total} tensors, {nbytes / 1e9:.2f} GB, {now - self.start:.0f} s",
            flush=True)


def _convert(args, bindings) -> None:
  from prosocial_jax.checkpoints import importers
  from prosocial_jax.checkpoints.importers import writer

  for option in ("source", "output_dir"):  # absolute, as recorded in the checkpoint
    value = getattr(args, option)
    if "://" not in value:
      setattr(args, option, os.path.abspath(os.path.expanduser(value)))
  config = model_config(args.gin_file, bindings, args.gin_search_paths) if args.gin_file else None
  writer.check_output_dir(args.output_dir, args.overwrite)  # fail before reading anything
  imported = importers.import_checkpoint(args.source, format=args.format, config=config)
  print(f"Converting {imported.source} ({imported.format}) to {args.output_dir}", flush=True)
  meta = writer.write_checkpoint(imported, args.output_dir, overwrite=args.overwrite,
                                 progress=_Progress())
  print(imported.report.summary())
  by_transform: dict[str, list[str]] = {}
  for name, transform in imported.report.converted.items():
    by_transform.setdefault(transform, []).append(name)
  for transform, names in sorted(by_transform.items()):
    listed = f": {', '.join(names)}" if len(names) <= 2 else ""
    print(f"  {transform}: {len(names)} tensors{listed}")
  vocabulary = meta["vocabulary"]
  print(f"vocabulary: {vocabulary['source']} ({vocabulary['vocab_size']} ids)" if vocabulary
        else "vocabulary: none in the checkpoint (give the run's task its vocabulary)")
  if vocabulary and vocabulary["vocab_size"] > imported.config.vocab_size:
    print(f"warning: the vocabulary's {vocabulary['vocab_size']} ids (extra ids included) do "
          f"not fit the model's {imported.config.vocab_size} embedding rows: a run with it "
          "is refused; give the run fewer VOCABULARY_EXTRA_IDS or another vocabulary.")
  count = sum(math.prod(shape) for shape in meta["param_shapes"].values())
  if meta.get("trained_on"):
    print(f"trained on: {meta['trained_on'].get('mixture_or_task_name')} "
          f"{meta['trained_on'].get('task_feature_lengths')} (the export's record: "
          "`eval` and the inference tools use it)")
  print(f"Wrote {args.output_dir}/checkpoint_0 ({len(meta['param_shapes'])} tensors, "
        f"{count:,} parameters). "
        f"Train from it with --gin.INITIAL_CHECKPOINT_PATH=\"'{args.output_dir}'\".")


def main(argv=None) -> None:
  args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from prosocial_jax.checkpoints.importers import CheckpointImportError
  with user_errors.exit_on((CheckpointImportError, FileNotFoundError)):
    _convert(args, bindings)


if __name__ == "__main__":
  main()
