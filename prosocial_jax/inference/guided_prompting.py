"""Canary-guided prompting of any Hugging Face causal LM (paper §6.2).

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from prosocial_jax.inference import Canary
    from prosocial_jax.inference.guided_prompting import CanaryGuidedLM
    lm = CanaryGuidedLM(Canary.from_pretrained("runs/canary"),
                        AutoModelForCausalLM.from_pretrained("gpt2"),
                        AutoTokenizer.from_pretrained("gpt2"))
    lm.respond(["I took credit for my coworker's idea."])              # Canary-guided
    lm.respond(["I took credit for my coworker's idea."], guided=False)  # the baseline
    # GuidedResponse(prompt=..., response=..., safety_label=..., rots=[...], continuation=...)

The prompt is the dialogue as a script between Speaker 1 (the user, who speaks first and
last) and Speaker 2 (the model), one turn a line, ending with "Speaker 2:" for the model
to continue:

    The following is a conversation between Speaker 1 and Speaker 2. Speaker 2 is trying to gently explain It's wrong to take credit for others' work. You should be honest.
    Speaker 1: I took credit for my coworker's idea.
    Speaker 2:

The guided prompt adds the sentence "Speaker 2 is trying to gently explain {RoTs}." with
Canary's rules-of-thumb (joined by spaces, each as Canary wrote it, with a full stop
added to any that does not end in . ! or ?). This wording is the one the issue quotes
from the paper; the paper's text is not in this repository to check it against. When
Canary says `__casual__` or gives no RoTs, the guided prompt is the plain prompt (the
baseline: the first sentence alone).

The response is the model's continuation after the prompt (the prompt's ids are never
decoded again), up to its first newline, stripped: the next line would be another
speaker's turn. Greedy by default; any `generate` options pass through.

transformers and torch are imported inside the functions that use them: they are not
dependencies of the library (only of the tests), and the caller who passes a model has
them installed already.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Union

from prosocial_jax.data import formatting
from prosocial_jax.data.labels import CASUAL

Context = Union[str, Sequence[str]]

INTRODUCTION = "The following is a conversation between Speaker 1 and Speaker 2."
GUIDANCE = "Speaker 2 is trying to gently explain {rots}"   # each RoT ends its sentence
SPEAKERS = ("Speaker 1", "Speaker 2")


@dataclasses.dataclass(frozen=True)
class GuidedResponse:
  """One reply: the prompt the LM read, its response (the continuation's first line),
  Canary's verdict (None and [] for the baseline, which does not ask Canary), and the
  whole decoded continuation."""
  prompt: str
  response: str
  safety_label: Optional[str]
  rots: list[str]
  continuation: str = ""


def _utterances(history: Context) -> list[str]:
  """The dialogue's utterances, oldest first; Speaker 1 speaks first and last."""
  utterances = [history] if isinstance(history, str) else list(history)
  if not utterances or not all(isinstance(u, str) for u in utterances):
    raise ValueError("the history must be an utterance or a non-empty list of utterances")
  if len(utterances) % 2 == 0:
    raise ValueError(f"the history has {len(utterances)} utterances; it must end with "
                     "Speaker 1's (the user's), so it has an odd number")
  return [formatting.normalize_text(u) for u in utterances]


def _script(introduction: str, history: Context) -> str:
  lines = [introduction]
  lines += [f"{SPEAKERS[k % 2]}: {u}" if u else f"{SPEAKERS[k % 2]}:"
            for k, u in enumerate(_utterances(history))]
  lines.append(f"{SPEAKERS[1]}:")
  return "\n".join(lines)


def plain_prompt(history: Context) -> str:
  """The baseline prompt: the introduction and the dialogue, ending with "Speaker 2:"."""
  return _script(INTRODUCTION, history)


def guidance(rots: Sequence[str]) -> str:
  """"Speaker 2 is trying to gently explain {RoTs}." ("" without RoTs)."""
  rots = formatting.clean_rots(rots)
  if not rots:
    return ""
  return GUIDANCE.format(rots=" ".join(r if r.endswith((".", "!", "?")) else f"{r}."
                                      for r in rots))


def guided_prompt(history: Context, canary_output: Any) -> str:
  """The prompt guided by `canary_output` (a `CanaryOutput`, or anything with
  `safety_label` and `rots`); the plain prompt for `__casual__` or no RoTs."""
  sentence = ("" if canary_output.safety_label == CASUAL
              else guidance(canary_output.rots))
  return _script(f"{INTRODUCTION} {sentence}" if sentence else INTRODUCTION, history)


class CanaryGuidedLM:
  """A Hugging Face causal LM prompted with Canary's RoTs (`guided=True`) or without."""

  def __init__(self, canary, model, tokenizer, *, max_new_tokens: int = 64,
               **generate_options):
    self.canary = canary
    self.model = model
    self.tokenizer = tokenizer
    self.max_new_tokens = max_new_tokens
    self.generate_options = {"do_sample": False, **generate_options}

  def respond(self, history: Context, *, guided: bool = True,
              max_new_tokens: Optional[int] = None, **generate_options) -> GuidedResponse:
    """The LM's reply to `history` (utterances oldest first, the user's last)."""
    _utterances(history)   # a bad history fails before Canary runs
    if guided:
      verdict = self.canary.chirp([history])[0]
      label, rots = verdict.safety_label, list(verdict.rots)
      prompt = guided_prompt(history, verdict)
    else:
      label, rots, prompt = None, [], plain_prompt(history)
    continuation = self.generate(prompt, max_new_tokens=max_new_tokens or self.max_new_tokens,
                                 **generate_options)
    return GuidedResponse(prompt, continuation.split("\n", 1)[0].strip(), label, rots,
                          continuation)

  def generate(self, prompt: str, *, max_new_tokens: int, **generate_options) -> str:
    """The decoded continuation of `prompt` (special tokens skipped), without the prompt."""
    import torch  # pylint: disable=import-outside-toplevel  (a test-only dependency)
    encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    device = getattr(self.model, "device", None)
    if device is not None:
      encoded = encoded.to(device)
    options = {**self.generate_options, **generate_options}
    pad_id = self.tokenizer.pad_token_id
    if pad_id is None:
      pad_id = self.tokenizer.eos_token_id
    with torch.no_grad():
      output = self.model.generate(**encoded, max_new_tokens=max_new_tokens,
                                   pad_token_id=pad_id, **options)
    new_ids = output[0, encoded["input_ids"].shape[1]:]
    return self.tokenizer.decode(new_ids, skip_special_tokens=True)
