"""Entry point: chat with Prost in the terminal, with Canary's verdict shown at every turn.

  python -m prosocial_jax.chat --canary=DIR --prost=DIR [--step=N|latest|best]
      [--decode=greedy|beam|sample] [--beam_size=4 --alpha=0.6]
      [--temperature=1.0 --top_k=0 --top_p=1.0 --seed=0]

DIR: a run's MODEL_DIR or a folder written by `python -m prosocial_jax.export`
(`--step` applies to both MODEL_DIRs). At each turn Canary reads the dialogue so far,
ending with what you just typed, and its safety label and rules-of-thumb are printed;
then Prost responds to the same dialogue (`Prost.respond(history)`), and its response
joins the history. The decoding flags are Prost's; Canary decodes greedily.

Commands: /reset starts a new conversation, /quit (or Ctrl-D, or Ctrl-C) ends the
chat with status 0. Models that cannot be opened exit with status 2 and a message.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from prosocial_jax import decode_flags, user_errors

BANNER = "Chat with Prost; Canary's verdict is shown above each response. " \
         "/reset starts over, /quit or Ctrl-D ends."
PROMPT = "You: "


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m prosocial_jax.chat",
                                   description="Chat with Prost; Canary judges every turn.")
  parser.add_argument("--canary", required=True, help="Canary: a MODEL_DIR or exported folder")
  parser.add_argument("--prost", required=True, help="Prost: a MODEL_DIR or exported folder")
  parser.add_argument("--step", default="latest",
                      help="MODEL_DIRs only: a step number, 'latest' (default) or 'best'")
  decode_flags.add_decode_flags(parser, "Prost's decoding (Canary decodes greedily)")
  args = parser.parse_args(list(argv))
  decode_flags.check_decode_flags(parser, args)
  return args


def verdict_lines(output) -> list[str]:
  """Canary's output as the chat shows it: the label, then one line per RoT."""
  lines = [f"Canary: {output.safety_label or '(no safety label)'}"]
  lines += [f"  RoT: {rot}" for rot in output.rots]
  return lines


def chat(canary, prost, *, read: Callable[[str], str] = input,
         write: Callable[[str], None] = print) -> None:
  """The conversation loop: `read(prompt)` gives a line (EOFError ends the chat), `write`
  shows one. `canary` needs `chirp([history])`, `prost` `respond(history)`."""
  history: list[str] = []
  write(BANNER)
  while True:
    try:
      line = read(PROMPT).strip()
    except (EOFError, KeyboardInterrupt):
      write("")   # end the prompt's line
      return
    if not line:
      continue
    if line.startswith("/"):
      command = line.split()[0].lower()
      if command == "/quit":
        return
      if command == "/reset":
        history = []
        write("(a new conversation)")
      else:
        write(f"Unknown command {command}; /reset starts over, /quit ends.")
      continue
    history.append(line)
    for text in verdict_lines(canary.chirp([list(history)])[0]):
      write(text)
    response = prost.respond(list(history))
    history.append(response)
    write(f"Prost: {response}")


def open_models(args: argparse.Namespace):
  """(Canary, Prost) from the flags; a model of the wrong kind is a LoadError."""
  # pylint: disable=import-outside-toplevel  (SeqIO, TF, orbax: once the flags are good)
  from prosocial_jax.inference.pretrained import load_pretrained
  from prosocial_jax.inference.tools import Canary, Prost
  decode = decode_flags.decode_options(args)
  tools = []
  for flag, cls, options in (("--canary", Canary, {}), ("--prost", Prost, {"decode": decode})):
    pretrained = load_pretrained(getattr(args, flag[2:]), step=args.step)
    cls.check_kind(pretrained, f"{flag}={getattr(args, flag[2:])}")
    tools.append(cls(pretrained, batch_size=1, seed=args.seed, **options))
  return tuple(tools)


def main(argv=None) -> None:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=import-outside-toplevel  (SeqIO, TF, orbax: once the flags are good)
  from prosocial_jax.inference.pretrained import LOAD_ERRORS
  from prosocial_jax.training.input_pipeline import configure_tensorflow
  configure_tensorflow()   # SeqIO's vocabularies load TF: keep it off the accelerator
  print("Loading Canary and Prost ...", flush=True)
  with user_errors.exit_on(LOAD_ERRORS):
    canary, prost = open_models(args)
  chat(canary, prost, write=lambda text: print(text, flush=True))


if __name__ == "__main__":
  main()
