"""Canary-guided prompting: the prompts for hand-written Canary outputs, and generation with
a tiny random GPT-2 and a byte-level tokenizer built here (no hub)."""

import pytest

from prosocial_jax.inference.guided_prompting import (CanaryGuidedLM, GuidedResponse,
                                                      guided_prompt, plain_prompt)
from prosocial_jax.inference.tools import CanaryOutput

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

HISTORY = ["I took credit for my coworker's idea.", "Why did you do that?",
           "  I wanted   the promotion. "]
CAUTION = CanaryOutput("__needs_caution__", ["It's wrong to take credit for others' work",
                                             "You should be honest."])
CASUAL = CanaryOutput("__casual__", [])

DIALOGUE = ("Speaker 1: I took credit for my coworker's idea.\n"
            "Speaker 2: Why did you do that?\n"
            "Speaker 1: I wanted the promotion.\n"
            "Speaker 2:")
INTRO = "The following is a conversation between Speaker 1 and Speaker 2."


def test_the_guided_prompt_has_canarys_rots():
  assert guided_prompt(HISTORY, CAUTION) == (
      f"{INTRO} Speaker 2 is trying to gently explain It's wrong to take credit for others' "
      f"work. You should be honest.\n{DIALOGUE}")
  one = CanaryOutput("__needs_intervention__", ["You shouldn't hurt people"])
  assert guided_prompt("I want to hurt him.", one) == (
      f"{INTRO} Speaker 2 is trying to gently explain You shouldn't hurt people.\n"
      "Speaker 1: I want to hurt him.\nSpeaker 2:")


def test_casual_or_no_rots_and_the_baseline_are_the_plain_prompt():
  assert plain_prompt(HISTORY) == f"{INTRO}\n{DIALOGUE}"
  assert guided_prompt(HISTORY, CASUAL) == plain_prompt(HISTORY)
  assert guided_prompt(HISTORY, CanaryOutput("__casual__", ["Stray RoT."])) == plain_prompt(HISTORY)
  assert guided_prompt(HISTORY, CanaryOutput("__needs_caution__", [])) == plain_prompt(HISTORY)
  assert plain_prompt("Hi!") == f"{INTRO}\nSpeaker 1: Hi!\nSpeaker 2:"


def test_a_history_must_end_with_the_user():
  for bad in ([], HISTORY[:2], [1]):
    with pytest.raises(ValueError):
      plain_prompt(bad)


class FakeCanary:
  def __init__(self, output):
    self.output, self.contexts = output, []

  def chirp(self, contexts):
    self.contexts += contexts
    return [self.output]


@pytest.fixture(scope="module")
def tokenizer():
  from tokenizers import decoders, models, pre_tokenizers
  vocab = {"<|endoftext|>": 0,
           **{c: i + 1 for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}}
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[]))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def model(tokenizer):
  torch.manual_seed(0)
  config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=512,
                                   vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0)
  return transformers.GPT2LMHeadModel(config).eval()


def _greedy_by_hand(model, tokenizer, prompt, steps):
  """The greedy continuation, one argmax at a time: what `respond` must decode."""
  ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
  new = []
  with torch.no_grad():
    for _ in range(steps):
      next_id = int(model(torch.cat([ids, torch.tensor([new], dtype=ids.dtype)], 1)
                          if new else ids).logits[0, -1].argmax())
      new.append(next_id)
      if next_id == tokenizer.eos_token_id:
        break
  return tokenizer.decode(new, skip_special_tokens=True)


def test_guided_generation_continues_the_prompt_greedily(model, tokenizer):
  canary = FakeCanary(CAUTION)
  lm = CanaryGuidedLM(canary, model, tokenizer, max_new_tokens=12)
  reply = lm.respond(HISTORY)
  assert isinstance(reply, GuidedResponse)
  assert canary.contexts == [HISTORY]   # Canary read the dialogue, ending with the user
  assert reply.prompt == guided_prompt(HISTORY, CAUTION)
  assert (reply.safety_label, reply.rots) == (CAUTION.safety_label, CAUTION.rots)
  assert reply.continuation == _greedy_by_hand(model, tokenizer, reply.prompt, 12)
  assert reply.response == reply.continuation.split("\n")[0].strip()
  assert lm.respond(HISTORY) == reply   # greedy is deterministic

  baseline = lm.respond(HISTORY, guided=False, max_new_tokens=5)
  assert len(canary.contexts) == 2      # the baseline does not ask Canary
  assert (baseline.prompt, baseline.safety_label, baseline.rots) == (
      plain_prompt(HISTORY), None, [])
  assert baseline.continuation == _greedy_by_hand(model, tokenizer, baseline.prompt, 5)

  casual = CanaryGuidedLM(FakeCanary(CASUAL), model, tokenizer, max_new_tokens=5)
  reply = casual.respond(HISTORY)
  assert (reply.prompt, reply.continuation) == (baseline.prompt, baseline.continuation)
  assert reply.safety_label == "__casual__"


class ScriptedLM:
  """Continues any prompt with fixed text: the response is its first line, no echo."""

  def __init__(self, tokenizer, text):
    self.ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

  def generate(self, input_ids, attention_mask, max_new_tokens, pad_token_id, do_sample):
    assert (max_new_tokens, do_sample, pad_token_id) == (7, False, 0)
    return torch.cat([input_ids, self.ids], 1)


def test_the_response_is_the_continuations_first_line(tokenizer):
  lm = CanaryGuidedLM(FakeCanary(CAUTION), ScriptedLM(tokenizer, " That's not fair.\n"
                                                                 "Speaker 1: So?"), tokenizer)
  reply = lm.respond(HISTORY, max_new_tokens=7)
  assert reply.response == "That's not fair."
  assert reply.continuation == " That's not fair.\nSpeaker 1: So?"
