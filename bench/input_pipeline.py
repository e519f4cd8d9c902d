"""Input-pipeline benchmark: packed `canary_mixture` batches per second.

    python bench/input_pipeline.py                         # synthetic data, the README's setting
    python bench/input_pipeline.py --data_root DIR         # your data root (train splits)
    python bench/input_pipeline.py --no_pack --batches 200 --vocab byte

The batches come from the trainer's own `train_batches` (SeqIO mixture → feature
converter → batches of BATCH_SIZE), the default setting being the README's: batch
32, inputs 256 / targets 128, packed, the project's default SentencePiece
vocabulary. Without --data_root, a synthetic data root in the release formats is
written to a temporary folder (prosocial_jax/data/synthetic.py; `--dialogues` per
corpus and split): random English-like words, realistic lengths.

Reports (one JSON line, plus a readable summary): seconds to build the pipeline and
to the first batch, then batches/s, examples/s and non-padding tokens/s over
`--batches` batches after `--warmup` batches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--mixture", default="canary_mixture")
  parser.add_argument("--data_root", default=None, help="default: a synthetic data root")
  parser.add_argument("--dialogues", type=int, default=2000, help="synthetic dialogues per corpus and split")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--inputs", type=int, default=256)
  parser.add_argument("--targets", type=int, default=128)
  parser.add_argument("--no_pack", action="store_true")
  parser.add_argument("--batches", type=int, default=300)
  parser.add_argument("--warmup", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--vocab", default=None, help="a .model path or 'byte' (default: the tasks' default)")
  args = parser.parse_args(argv)

  import numpy as np  # pylint: disable=g-import-not-at-top  (after the env vars above)

  import tasks
  from prosocial_jax.data import corpora_of, synthetic
  from prosocial_jax.training.input_pipeline import configure_tensorflow, train_batches

  configure_tensorflow()
  data_root = args.data_root
  if data_root is None:  # the corpora of the paper's mixtures
    data_root = synthetic.write_data_root(tempfile.mkdtemp(prefix="bench_data_"), dialogues=args.dialogues,
                                          corpora=corpora_of("prosocial") + corpora_of("casual"),
                                          splits=("train",))
  tasks.set_data_root(data_root)
  if args.vocab:
    tasks.set_vocabulary(args.vocab)
  pack = not args.no_pack

  start = time.perf_counter()
  batches = train_batches(args.mixture, {"inputs": args.inputs, "targets": args.targets}, args.batch_size,
                          seed=args.seed, pack=pack)
  built = time.perf_counter()
  next(batches)
  first = time.perf_counter()
  for _ in range(args.warmup):
    next(batches)
  examples = tokens = 0
  timed = time.perf_counter()
  for _ in range(args.batches):
    batch = next(batches)
    if pack:
      examples += int(sum(len(np.unique(row[row > 0])) for row in batch["encoder_segment_ids"]))
    else:
      examples += len(batch["encoder_input_tokens"])
    tokens += int((batch["encoder_input_tokens"] > 0).sum() + (batch["decoder_target_tokens"] > 0).sum())
  seconds = time.perf_counter() - timed

  result = {
      "mixture": args.mixture, "packed": pack, "batch_size": args.batch_size,
      "lengths": [args.inputs, args.targets], "data": "synthetic" if args.data_root is None else data_root,
      "build_s": round(built - start, 2), "first_batch_s": round(first - built, 2),
      "batches_per_s": round(args.batches / seconds, 2),
      "examples_per_s": round(examples / seconds, 1),
      "tokens_per_s": round(tokens / seconds),
      "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
  }
  print("RESULT " + json.dumps(result))
  print(f"{args.mixture} ({'packed' if pack else 'not packed'}), batch {args.batch_size}, "
        f"inputs {args.inputs} / targets {args.targets}: {result['batches_per_s']} batches/s, "
        f"{result['examples_per_s']} examples/s, {result['tokens_per_s']} tokens/s on {os.cpu_count()} CPUs "
        f"(pipeline built in {result['build_s']} s, first batch after {result['first_batch_s']} s)",
        file=sys.stderr)
  return result


if __name__ == "__main__":
  main()
