"""Entry point: Canary or Prost over a JSON-lines file.

  python -m prosocial_jax.infer --model_dir=MODEL_DIR --input=IN.jsonl --output=OUT.jsonl
      [--step=N|latest|best] [--mode=predict|score] [--decode=greedy|beam|sample]
      [--beam_size=4 --alpha=0.6] [--temperature=1.0 --top_k=0 --top_p=1.0 --seed=0]
      [--batch_size=8] [--on_error=stop|skip] [--with_rots]

MODEL_DIR is a run's MODEL_DIR or a folder written by `python -m prosocial_jax.export`;
whether it is Canary or Prost comes from the task it trained on (or, unrecorded, its
architecture). Each input line (blank lines are ignored) is a JSON object with
`context`: a list of utterances, oldest first, or a string (one utterance, or a context
already in the model's "User: ... Bot: ... User: ..." format). Each output line is the
input line plus

  predict  `inputs` (the exact text the model read, before the cut to its input
           length), `prediction`; Canary: `safety_label`, `rots`; Prost: `rots`, `response`
  score    `inputs`, `log_likelihood` (natural log, summed over the target's tokens) and
           `num_target_tokens` of the line's `target` (a string)

(an input field of the same name, e.g. gold `rots` or `safety_label`, is kept as
`input_<name>`: the output holds both; the run says how many lines had one). `--with_rots` (Prost) appends each
line's `rots` (a string or a list of strings) to its input, as task
prosocial_dialog_prost_gold_rot does. A bad line is reported by its number and
field: `--on_error=stop` (default) ends the run before any decoding, `skip` leaves
the line out and counts it in the final summary. An input that is missing, empty or
not UTF-8 is an error naming the file (and the line). OUT is written whole or not at
all (a temporary file renamed into place; gs:// too). Errors exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

from etils import epath

from prosocial_jax import decode_flags, host_memory, user_errors


def _positive(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
  return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m prosocial_jax.infer",
                                   description="Run Canary or Prost over a JSON-lines file.")
  parser.add_argument("--model_dir", required=True,
                      help="a MODEL_DIR or an exported Hugging Face folder (local or gs://)")
  parser.add_argument("--input", required=True, help="JSON lines, each with `context`")
  parser.add_argument("--output", required=True, help="the JSON-lines file to write")
  parser.add_argument("--step", default="latest",
                      help="MODEL_DIR only: a step number, 'latest' (default) or 'best'")
  parser.add_argument("--mode", choices=("predict", "score"), default="predict")
  decode_flags.add_decode_flags(parser)
  parser.add_argument("--batch_size", type=_positive, default=8)
  parser.add_argument("--on_error", choices=("stop", "skip"), default="stop",
                      help="a bad input line stops the run (default) or is skipped")
  parser.add_argument("--with_rots", action="store_true",
                      help="Prost: give each line's `rots` as the gold-RoT input")
  args = parser.parse_args(list(argv))
  decode_flags.check_decode_flags(parser, args)
  return args


class InputError(user_errors.UserError, ValueError):
  """A bad input line (or file); the message names the line and the field."""


def read_lines(path: str) -> list[tuple[int, str]]:
  """(line number, text) of each non-blank line of `path` (UTF-8; lines end at LF, CRLF
  or CR only, as in the data readers: JSON may hold U+2028 raw inside a string)."""
  # pylint: disable=import-outside-toplevel  (TF comes with it: after the flags are good)
  from prosocial_jax.data.reading import split_lines
  if not epath.Path(path).exists():
    raise InputError(f"input {path} does not exist.")
  data = epath.Path(path).read_bytes()
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as error:
    line = data.count(b"\n", 0, error.start) + 1
    raise InputError(f"input {path} line {line}: not UTF-8 text (byte {error.start}: "
                     f"{data[error.start:error.start + 1]!r}); convert the file to UTF-8.") from None
  lines = [(n, line) for n, line in enumerate(split_lines(text), 1) if line.strip()]
  if not lines:
    raise InputError(f"input {path} is empty: expected JSON lines, each an object with "
                     "`context`.")
  return lines


def _field_with_bad_text(record: dict[str, Any]) -> str | None:
  """The first field whose key or value holds a lone UTF-16 surrogate (a JSON escape such
  as "\\ud83d" without its pair): such text can be neither tokenized nor written out."""
  for key, value in record.items():
    try:
      json.dumps([key, value], ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
      return (f"field {key!r}: not valid Unicode text (a lone surrogate: half of an escaped "
              "UTF-16 pair such as \\ud83d)")
  return None


def parse_line(number: int, line: str, tool, *, mode: str, with_rots: bool
               ) -> tuple[dict[str, Any], str]:
  """(the record, the text the model reads) of one input line, or InputError."""
  where = f"line {number}"
  try:
    record = json.loads(line)
  except ValueError as error:
    raise InputError(f"{where}: not JSON ({error})") from None
  except RecursionError:
    raise InputError(f"{where}: not JSON (nested too deeply to decode)") from None
  if not isinstance(record, dict):
    raise InputError(f"{where}: not a JSON object")
  bad_text = _field_with_bad_text(record)
  if bad_text:
    raise InputError(f"{where}: {bad_text}")
  if "context" not in record:
    raise InputError(f"{where}: field 'context' is missing")
  context = record["context"]
  if not isinstance(context, (str, list)):
    raise InputError(f"{where}: field 'context' must be a string or a list of strings, "
                     f"not {type(context).__name__}")
  rots = None
  if with_rots:
    rots = record.get("rots")
    if not (isinstance(rots, str) or (isinstance(rots, list) and
                                      all(isinstance(r, str) for r in rots))):
      raise InputError(f"{where}: field 'rots' (--with_rots) must be a string or a list of "
                       "strings" + ("; it is missing" if "rots" not in record else ""))
  if mode == "score" and not isinstance(record.get("target"), str):
    raise InputError(f"{where}: field 'target' (--mode=score) must be a string" +
                     ("; it is missing" if "target" not in record else ""))
  try:
    text = tool.inputs_text(context, rots) if with_rots else tool.inputs_text(context)
  except ValueError as error:
    raise InputError(f"{where}: field 'context': {error}") from None
  return record, text


class ProgressLine:
  """`infer: 40/100 lines | 12.3 lines/s | ETA 0:00:05` on stderr: redrawn in place on a
  terminal, otherwise a line every `every` seconds and at the end."""

  def __init__(self, total: int, every: float = 10.0):
    self.total, self.every = total, every
    self.start = self.last = time.monotonic()
    self.tty = sys.stderr.isatty()

  def __call__(self, done: int) -> None:
    now = time.monotonic()
    if not self.tty and now - self.last < self.every and done < self.total:
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    eta = int((self.total - done) / rate) if rate > 0 else 0
    text = (f"infer: {done}/{self.total} lines | {rate:.1f} lines/s | "
            f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
    end = "\n" if not self.tty or done >= self.total else ""
    print(("\r" if self.tty else "") + text, end=end, file=sys.stderr, flush=True)


def write_atomically(path: str, lines: Sequence[str]) -> None:
  """Writes `lines` to a temporary file beside `path`, then renames it into place."""
  target = epath.Path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  partial = target.parent / f".{target.name}.partial-{os.getpid()}"
  try:
    with partial.open("w") as f:
      f.writelines(line + "\n" for line in lines)
    partial.replace(target)
  except BaseException:
    if partial.exists():
      partial.unlink()
    raise


KEPT_PREFIX = "input_"


def output_fields(tool, mode: str) -> tuple[str, ...]:
  """The fields each output line gets, besides the input's."""
  if mode == "score":
    return ("inputs", "log_likelihood", "num_target_tokens")
  from prosocial_jax.inference.tools import Canary
  return ("inputs", "prediction") + (("safety_label", "rots") if isinstance(tool, Canary)
                                     else ("rots", "response"))


def merge_outputs(record: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
  """The input line plus the outputs; an input field an output would overwrite (gold
  `rots`, a `safety_label` to compare with) is kept as `input_<name>`."""
  merged = {KEPT_PREFIX + k if k in outputs else k: v for k, v in record.items()}
  merged.update(outputs)
  return merged


def run(args: argparse.Namespace) -> str:
  """Reads, runs, writes; returns the summary line. Raises the errors `main` reports."""
  # pylint: disable=import-outside-toplevel  (SeqIO, TF, orbax: once the flags are good)
  from prosocial_jax.inference.tools import Canary, Prost, open_tool
  lines = read_lines(args.input)   # a missing input fails before the model is read
  decode = decode_flags.decode_options(args)
  tool = open_tool(args.model_dir, step=args.step, decode=decode,
                   batch_size=args.batch_size, seed=args.seed)
  if args.with_rots and not isinstance(tool, Prost):
    raise InputError("--with_rots gives Prost its RoTs; the model in --model_dir is Canary.")
  records, texts, skipped = [], [], []
  names = output_fields(tool, args.mode)
  for number, line in lines:
    try:
      record, text = parse_line(number, line, tool, mode=args.mode, with_rots=args.with_rots)
      both = [n for n in names if n in record and KEPT_PREFIX + n in record]
      if both:
        raise InputError(f"line {number}: fields {both[0]!r} and {KEPT_PREFIX + both[0]!r} "
                         f"are both there, and the output's {both[0]!r} moves the first to "
                         "the second: rename one")
    except InputError as error:
      if args.on_error == "stop":
        raise InputError(f"{args.input} {error} (--on_error=skip leaves such lines out)") from None
      print(f"skipped {args.input} {error}", file=sys.stderr)
      skipped.append(number)
      continue
    records.append(record)
    texts.append(text)

  progress = ProgressLine(len(texts))
  if args.mode == "score":
    scores = tool.score(texts, [r["target"] for r in records], progress=progress)
    added = [{"log_likelihood": s.log_likelihood, "num_target_tokens": s.num_target_tokens}
             for s in scores]
  else:
    predictions = tool.predict(texts, progress=progress)
    if isinstance(tool, Canary):
      added = [{"safety_label": o.safety_label, "rots": o.rots}
               for o in map(tool.parse, predictions)]
    else:
      added = [{"rots": o.rots, "response": o.response}
               for o in map(tool.parse, predictions)]
    added = [{"prediction": p, **a} for p, a in zip(predictions, added)]
  out = [json.dumps(merge_outputs(record, {"inputs": text, **extra}), ensure_ascii=False)
         for record, text, extra in zip(records, texts, added)]
  write_atomically(args.output, out)
  summary = (f"Wrote {len(out)} line{'s' * (len(out) != 1)} to {args.output} "
             f"({type(tool).__name__}, {args.mode})")
  kept = sorted({name for record in records for name in record if name in names})
  if kept:
    summary += (f"; the input's own {', '.join(kept)} kept as "
                f"{', '.join(KEPT_PREFIX + name for name in kept)}")
  if skipped:
    summary += (f"; skipped {len(skipped)} bad line{'s' * (len(skipped) > 1)}: "
                f"{', '.join(map(str, skipped))}")
  return summary + "."


def main(argv=None) -> None:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=import-outside-toplevel  (SeqIO, TF, orbax: once the flags are good)
  from prosocial_jax.inference.pretrained import LOAD_ERRORS
  from prosocial_jax.training.input_pipeline import configure_tensorflow
  configure_tensorflow()   # SeqIO's vocabularies load TF: keep it off the accelerator
  with user_errors.exit_on((InputError, *LOAD_ERRORS)):
    print(run(args), flush=True)


if __name__ == "__main__":
  host_memory.reexec_with_hugepages()  # before JAX is imported
  main()
