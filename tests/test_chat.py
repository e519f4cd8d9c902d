"""`python -m prosocial_jax.chat`: the loop on stand-in models, and the real command on tiny
trained Canary and Prost runs, typed at through a pseudo-terminal."""

import os
import pathlib
import select
import subprocess
import sys
import time

import pytest

from prosocial_jax import chat
from prosocial_jax.inference.tools import CanaryOutput

from .inference.tiny_runs import tiny_canary, tiny_prost

ROOT = pathlib.Path(__file__).resolve().parents[1]


class FakeCanary:
  def __init__(self):
    self.contexts = []

  def chirp(self, contexts):
    self.contexts += contexts
    return [CanaryOutput("__needs_caution__", ["It's rude to lie.", "Be kind."])]


class FakeProst:
  def respond(self, history):
    return f"reply {len(history)}"


def test_the_loop_shows_canary_then_prost_and_obeys_commands():
  canary, lines = FakeCanary(), []
  typed = iter(["Hi there.", "", "/nonsense", "I lied to her.", "/reset", "Hello."])

  def read(prompt):
    assert prompt == chat.PROMPT
    return next(typed)   # StopIteration would fail the test: the loop must end at EOF

  def read_then_eof(prompt):
    try:
      return read(prompt)
    except StopIteration:
      raise EOFError from None

  chat.chat(canary, FakeProst(), read=read_then_eof, write=lines.append)
  assert canary.contexts == [["Hi there."], ["Hi there.", "reply 1", "I lied to her."],
                             ["Hello."]]
  verdict = ["Canary: __needs_caution__", "  RoT: It's rude to lie.", "  RoT: Be kind."]
  assert lines == [chat.BANNER, *verdict, "Prost: reply 1",
                   "Unknown command /nonsense; /reset starts over, /quit ends.",
                   *verdict, "Prost: reply 3", "(a new conversation)",
                   *verdict, "Prost: reply 1", ""]

  lines.clear()
  typed = iter(["/quit", "never read"])
  chat.chat(FakeCanary(), FakeProst(), read=lambda prompt: next(typed), write=lines.append)
  assert lines == [chat.BANNER] and next(typed) == "never read"
  assert chat.verdict_lines(CanaryOutput(None, [])) == ["Canary: (no safety label)"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("chat")
  tiny_canary(root / "canary", steps=2, eval_at_end=False)
  tiny_prost(root / "prost", steps=2)
  return root / "canary", root / "prost"


class Terminal:
  """A command on a pseudo-terminal: `expect` reads until a text appears, `type` a line."""

  def __init__(self, args):
    master, slave = os.openpty()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                                    env=env, close_fds=True)
    os.close(slave)
    self.master, self.output, self.seen = master, "", 0

  def expect(self, text, timeout=300):
    """The output after the previous match, up to and including `text`."""
    start, deadline = self.seen, time.time() + timeout
    while text not in self.output[start:]:
      if time.time() > deadline or self.process.poll() is not None and not self._ready(0):
        raise AssertionError(f"{text!r} never came; the terminal shows:\n{self.output}")
      if self._ready(1):
        try:
          self.output += os.read(self.master, 4096).decode(errors="replace")
        except OSError:   # the command ended and closed the terminal
          raise AssertionError(f"{text!r} never came; the command ended:\n{self.output}") from None
    self.seen = self.output.index(text, start) + len(text)
    return self.output[start:self.seen]

  def _ready(self, timeout):
    return bool(select.select([self.master], [], [], timeout)[0])

  def type(self, line):
    os.write(self.master, (line + "\n").encode())

  def close(self):
    try:
      self.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
    os.close(self.master)
    return self.process.returncode


def test_chat_in_a_terminal(runs):
  canary_dir, prost_dir = runs
  terminal = Terminal([sys.executable, "-m", "prosocial_jax.chat", f"--canary={canary_dir}",
                       f"--prost={prost_dir}", "--decode=beam", "--beam_size=2"])
  try:
    terminal.expect(chat.BANNER)
    terminal.expect(chat.PROMPT)
    turns = []
    for utterance in ("I took credit for my coworker's idea.", "I won't tell anyone.",
                      "/reset", "Hello again."):
      terminal.type(utterance)
      turns.append(terminal.expect(f"\n{chat.PROMPT}"))
    terminal.type("/quit")
  finally:
    status = terminal.close()
  assert status == 0, terminal.output
  for turn in turns[:2] + turns[3:]:
    lines = [line.strip() for line in turn.splitlines()]
    labels = [line for line in lines if line.startswith("Canary: ")]
    assert len(labels) == 1, turn
    assert sum(line.startswith("Prost:") for line in lines) == 1, turn
    assert lines.index(labels[0]) < next(i for i, l in enumerate(lines)
                                         if l.startswith("Prost:")), turn
  assert "(a new conversation)" in turns[2] and "Canary:" not in turns[2]


def test_a_canary_given_as_prost_is_an_error(runs):
  canary_dir, _ = runs
  result = subprocess.run([sys.executable, "-m", "prosocial_jax.chat",
                           f"--canary={canary_dir}", f"--prost={canary_dir}"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
  assert result.returncode == 2
  assert f"--prost={canary_dir} is not a Prost model" in result.stderr
