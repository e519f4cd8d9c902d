"""The decoding flags of the entry points that generate text (infer, chat), defined once.

  --decode=greedy|beam|sample [--beam_size=4 --alpha=0.6]
  [--temperature=1.0 --top_k=0 --top_p=1.0 --seed=0]
"""

from __future__ import annotations

import argparse

from prosocial_jax.inference.model import DECODE_METHODS


def add_decode_flags(parser: argparse.ArgumentParser, decode_help: str | None = None) -> None:
  parser.add_argument("--decode", choices=DECODE_METHODS, default="greedy", help=decode_help)
  parser.add_argument("--beam_size", type=int, default=4)
  parser.add_argument("--alpha", type=float, default=0.6, help="beam search length penalty")
  parser.add_argument("--temperature", type=float, default=1.0)
  parser.add_argument("--top_k", type=int, default=0, help="sampling: 0 = no limit")
  parser.add_argument("--top_p", type=float, default=1.0, help="sampling: 1.0 = no limit")
  parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def check_decode_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """A usage error (exit 2) for values no decoder takes."""
  if args.beam_size < 1:
    parser.error("--beam_size must be at least 1")
  if args.temperature <= 0 or args.top_k < 0 or not 0 < args.top_p <= 1:
    parser.error("sampling needs --temperature > 0, --top_k >= 0 and 0 < --top_p <= 1")
  # A flag of another method than the one chosen would be silently ignored: say so.
  for method, flags in (("beam", ("beam_size", "alpha")),
                        ("sample", ("temperature", "top_k", "top_p"))):
    given = [f"--{f}" for f in flags if getattr(args, f) != parser.get_default(f)]
    if given and args.decode != method:
      parser.error(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to "
                   f"--decode={method} "
                   f"(this run decodes with --decode={args.decode})")


def decode_options(args: argparse.Namespace):
  """The `DecodeOptions` the flags describe."""
  from prosocial_jax.inference.model import DecodeOptions  # pylint: disable=import-outside-toplevel
  return DecodeOptions(args.decode, beam_size=args.beam_size, alpha=args.alpha,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
