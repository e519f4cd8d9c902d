"""`python -m prosocial_jax --version`: which code is installed; the entry points it has."""

from __future__ import annotations

import argparse

from prosocial_jax import version

ENTRY_POINTS = ("python -m prosocial_jax.train --gin_file=... [--gin.NAME=VALUE ...]",
                "python -m prosocial_jax.eval --model_dir=MODEL_DIR [--task=NAME] [--split=test]",
                "python -m prosocial_jax.data download|stats|synthetic ...")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m prosocial_jax",
      description="prosocial_jax: train, evaluate and ship the ProsocialDialog models.",
      epilog="Entry points:\n  " + "\n  ".join(ENTRY_POINTS),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--version", action="store_true", help="print the version and exit")
  args = parser.parse_args(argv)
  if args.version:
    print(version.describe())
  else:
    parser.print_help()


if __name__ == "__main__":
  main()
