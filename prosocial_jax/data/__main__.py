"""`python -m prosocial_jax.data <command>`: the data layer's command line.

  download <corpus>|all [--data_root DIR] [--variant direct]
      fetch official releases into the data root (resumable, checksummed)
  stats <corpus>|all [--data_root DIR|sample] [--split S] [--skip_bad_records]
      read a corpus and print dialogues / utterances (or rows) per split ('sample': the
      ProsocialDialog sample shipped with the package, as `eval --data_root=sample`);
      exit status 1 when a file is malformed (BAD DATA), 2 when the one corpus named
      (not `all`) has none of the splits asked for
  train-vocab --data_root DIR --output PREFIX [--vocab_size N] [--corpus C ...]
      train the SentencePiece vocabulary reproducibly (prosocial_jax/data/train_vocab.py)
  toxichat-threads SPLIT --output OUT.jsonl [--data_root DIR|sample]
      ToxiChat's threads as `python -m prosocial_jax.infer` input (responses for scoring)
  synthetic DIR [--dialogues N]
      write a synthetic data root in every release format (tests, benchmarks)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from prosocial_jax import user_errors
from prosocial_jax.data import CORPORA, corpus, download, synthetic
from prosocial_jax.data.data_root import SPLITS, resolve_data_root
from prosocial_jax.data.errors import DataFormatError, MissingDataError


def _download(args) -> int:
  if args.corpus == "all":
    status = download.download_all(args.data_root, variant=None)
    return 0 if all(s in ("ok", "manual") for s in status.values()) else 1
  try:
    files = download.download(args.corpus, args.data_root, variant=args.variant)
  except download.ManualDownloadRequired as e:
    print(f"{args.corpus}: cannot be downloaded automatically. {e}", file=sys.stderr)
    return 2
  except (download.DownloadError, ValueError, OSError) as e:
    print(f"{args.corpus}: download failed: {e}", file=sys.stderr)
    return 1
  for path in files:
    print(path)
  return 0


def corpus_stats(name: str, split: str, data_root: str | None, skip_bad_records: bool) -> dict:
  """{records, utterances, skipped, left_out} of one split of one corpus."""
  result = corpus(name).load_split(split, data_root, skip_bad_records=skip_bad_records)
  return {"records": len(result), "utterances": sum(r.utterance_count for r in result),
          "skipped": result.skipped_count, "left_out": result.left_out}


def _stats(args) -> int:
  corpora = list(CORPORA) if args.corpus == "all" else [args.corpus]
  splits = [args.split] if args.split else list(SPLITS)
  print(f"data root: {resolve_data_root(args.data_root)}")
  failed, read = False, False
  for name in corpora:
    for split in splits:
      try:
        s = corpus_stats(name, split, args.data_root, args.skip_bad_records)
        read = True
        skipped = f"  ({s['skipped']} bad records skipped)" if s["skipped"] else ""
        skipped += f"  ({s['left_out']} records not used)" if s["left_out"] else ""
        print(f"{name:24s} {split:10s} {s['records']:8d} records "
              f"{s['utterances']:9d} utterances{skipped}")
      except MissingDataError as e:
        print(f"{name:24s} {split:10s} missing: {e}")
      except DataFormatError as e:
        print(f"{name:24s} {split:10s} BAD DATA: {e}")
        failed = True
  if failed:
    return 1
  return 2 if not read and args.corpus != "all" else 0  # the one corpus asked for is missing


def _toxichat_threads(args) -> int:
  from prosocial_jax.data import toxichat  # pylint: disable=import-outside-toplevel
  threads = toxichat.CORPUS.load_split(args.split, args.data_root)
  records = toxichat.thread_records(threads)
  with open(args.output, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
  print(f"{len(records)} ToxiChat {args.split} threads -> {args.output}; respond with "
        f"python -m prosocial_jax.infer --model_dir=MODEL_DIR --input={args.output} "
        "--output=responses.jsonl")
  return 0


def _synthetic(args) -> int:
  print(synthetic.write_data_root(args.dir, dialogues=args.dialogues))
  return 0


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv and argv[0] == "train-vocab":
    from prosocial_jax.data import train_vocab
    with user_errors.exit_on():
      return train_vocab.main(argv[1:])
  parser = argparse.ArgumentParser(prog="python -m prosocial_jax.data", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  d = commands.add_parser("download", help="fetch official releases into the data root")
  d.add_argument("corpus", help="a corpus folder name, or 'all'")
  d.add_argument("--data_root", default=None)
  d.add_argument("--variant", default=None, help="another release format (prosocial_dialog: direct)")
  d.set_defaults(run=_download)
  s = commands.add_parser("stats", help="read a corpus and count its records")
  s.add_argument("corpus", help="a corpus folder name, or 'all'")
  s.add_argument("--data_root", default=None)
  s.add_argument("--split", default=None)
  s.add_argument("--skip_bad_records", action="store_true")
  s.set_defaults(run=_stats)
  commands.add_parser("train-vocab", help="train the SentencePiece vocabulary (see --help there)")
  t = commands.add_parser("toxichat-threads",
                          help="ToxiChat threads as `python -m prosocial_jax.infer` input")
  t.add_argument("split", choices=SPLITS)
  t.add_argument("--output", required=True, help="a JSONL file to write")
  t.add_argument("--data_root", default=None)
  t.set_defaults(run=_toxichat_threads)
  y = commands.add_parser("synthetic", help="write a synthetic data root")
  y.add_argument("dir")
  y.add_argument("--dialogues", type=int, default=20)
  y.set_defaults(run=_synthetic)
  args = parser.parse_args(argv)
  if getattr(args, "data_root", None) == "sample":
    if args.command == "download":
      parser.error("download --data_root=sample: the shipped sample is not a download target")
    from prosocial_jax.data.data_root import sample_data_root
    args.data_root = sample_data_root()
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  with user_errors.exit_on():  # a missing corpus, a malformed file: the message, status 2
    return args.run(args)


if __name__ == "__main__":
  sys.exit(main())
