"""Canary and Prost as Python objects.

    from prosocial_jax.inference import Canary, Prost
    canary = Canary.from_pretrained("runs/canary")       # MODEL_DIR, or an exported folder
    canary.chirp(["I took credit for my coworker's idea."])
    # [CanaryOutput(safety_label='__needs_caution__', rots=["It's wrong to ..."], ...)]
    prost = Prost.from_pretrained("runs/prost", decode=DecodeOptions("beam", beam_size=4))
    prost.respond(["I skipped my friend's party.", "Why?", "I just didn't feel like it."])
    prost.respond(history, rots=["It's rude to cancel at the last minute."])   # gold RoTs

A context is a list of utterances, oldest first, or a string: one utterance, or a
context already in the model's format ("User: ... Bot: ... User: ...");
`prosocial_jax.data.formatting.context_text` turns either into the text the tasks
build, then `data.encoding` cuts it from the left to the trained input length and
ends it with EOS: the ids the SeqIO task gave the model for the same dialogue.
Outputs are decoded as SeqIO decodes them and parsed by the tasks' parsers
(`formatting.parse_canary_output` / `parse_prost_output`).

Work runs in fixed-shape batches (`batch_size` rows, inputs and targets padded
to the feature lengths; a short last batch repeats its first row), so each
decoding method compiles once. Greedy by default; `decode=` a `DecodeOptions`
or a method name ("greedy", "beam", "sample"), on the object or per call.
Sampling draws from `seed`, one key per batch, so a run is repeatable.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence, Union

import jax
import numpy as np

from prosocial_jax.checkpoints.stored import Step
from prosocial_jax.data import encoding, formatting
from prosocial_jax.inference.model import DecodeOptions, EncoderDecoderModel
from prosocial_jax.inference.pretrained import PROST, Pretrained, PretrainedError, load_pretrained

Context = Union[str, Sequence[str]]
Decode = Union[DecodeOptions, str, None]
Progress = Optional[Callable[[int], None]]   # called with the rows done after each batch


@dataclasses.dataclass(frozen=True)
class CanaryOutput:
  """Canary's verdict on one context: the safety label (None when the output starts with
  none) and the rules-of-thumb; `prediction` the whole output, `inputs` what it read."""
  safety_label: Optional[str]
  rots: list[str]
  prediction: str = ""
  inputs: str = ""


@dataclasses.dataclass(frozen=True)
class ProstOutput:
  """Prost's reply: the response and the RoTs it wrote first (none for a model trained on
  responses alone); `prediction` the whole output, `inputs` what it read."""
  response: str
  rots: list[str]
  prediction: str = ""
  inputs: str = ""


@dataclasses.dataclass(frozen=True)
class Score:
  """A target's log-likelihood given its context (natural log, summed over its tokens,
  EOS included, as the evaluation's perplexity counts them)."""
  log_likelihood: float
  num_target_tokens: int


class Seq2SeqTool:
  """A trained encoder-decoder with the tasks' input format: what Canary and Prost share."""

  def __init__(self, pretrained: Pretrained, *, decode: Decode = None, batch_size: int = 8,
               seed: int = 0):
    if batch_size < 1:
      raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    self.pretrained = pretrained
    self.model = EncoderDecoderModel(pretrained.config)
    self.vocabulary = pretrained.seqio_vocabulary()
    self.feature_lengths = dict(pretrained.feature_lengths)
    self.batch_size = batch_size
    self.decode = self._options(decode)
    self._params = jax.device_put(pretrained.params)
    self._rng = jax.random.key(seed)

  @classmethod
  def from_pretrained(cls, path: str, *, step: Step = "latest",
                      feature_lengths: Optional[dict[str, int]] = None, **options):
    """The model at `path`: a MODEL_DIR (`step`: "latest", "best" or a number) or a folder
    written by `python -m prosocial_jax.export`. `options`: decode, batch_size, seed.
    Canary on a Prost model (or the reverse) is a PretrainedError."""
    pretrained = load_pretrained(path, step=step, feature_lengths=feature_lengths)
    cls.check_kind(pretrained, path)
    return cls(pretrained, **options)

  @classmethod
  def check_kind(cls, pretrained: Pretrained, what: str) -> None:
    """Canary and Prost refuse the other's model: its outputs would parse as nonsense."""
    if cls in (Canary, Prost) and (pretrained.kind == PROST) != (cls is Prost):
      raise PretrainedError(f"{what} is not a {cls.__name__} model (its task: "
                            f"{pretrained.task or 'unrecorded'}).")

  # --- Texts and ids ---------------------------------------------------------------------

  def inputs_text(self, context: Context) -> str:
    """The text the model reads for `context` (before the cut to the input length)."""
    return formatting.context_text(context)

  def input_ids(self, text: str) -> list[int]:
    """`text`'s ids as the task's `inputs`: cut from the left, ended with EOS."""
    return encoding.encode_input(self.vocabulary, text, self.feature_lengths["inputs"])

  def target_ids(self, text: str) -> list[int]:
    return encoding.encode_target(self.vocabulary, text, self.feature_lengths["targets"])

  # --- The model ---------------------------------------------------------------------------

  def _parsed(self, texts: Sequence[str], decode: Decode, progress: Progress) -> list:
    """Each text's prediction through the subclass's `parse` (its output type)."""
    return [self.parse(p, t) for p, t in
            zip(self.predict(texts, decode=decode, progress=progress), texts)]

  def predict(self, texts: Sequence[str], *, decode: Decode = None,
              progress: Progress = None) -> list[str]:
    """The decoded output (SeqIO's decoding, stripped) for each input text."""
    options = self._options(decode) if decode is not None else self.decode
    predict = _compiled_predict(self.model.config, options)
    outputs: list[str] = []
    for rows in self._chunks([self.input_ids(t) for t in texts]):
      self._rng, key = jax.random.split(self._rng)
      tokens = np.asarray(predict(self._params, self._padded(rows, "inputs"), key))
      outputs += [encoding.decode(self.vocabulary, ids) for ids in tokens[:len(rows)]]
      if progress:
        progress(len(outputs))
    return outputs

  def score(self, texts: Sequence[str], targets: Sequence[str], *,
            progress: Progress = None) -> list[Score]:
    """Each target's log-likelihood given its input text (teacher forced, as `score_batch`
    in the evaluation; targets are cut to the target length and ended with EOS)."""
    if len(texts) != len(targets):
      raise ValueError(f"{len(texts)} input texts but {len(targets)} targets")
    pairs = [(self.input_ids(t), self.target_ids(g)) for t, g in zip(texts, targets)]
    scores: list[Score] = []
    for rows in self._chunks(pairs):
      score = _compiled_score(self.model.config)
      log_likelihood, counts = score(self._params, self._scoring_batch(rows))
      scores += [Score(float(ll), int(n)) for ll, n in
                 zip(np.asarray(log_likelihood)[:len(rows)], np.asarray(counts)[:len(rows)])]
      if progress:
        progress(len(scores))
    return scores

  def _scoring_batch(self, rows: Sequence[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
    """(input ids, target ids) pairs as the batch `EncDecFeatureConverter(pack=False)`
    makes of them, padded to `batch_size` rows: what `score_batch` reads."""
    targets = self._padded([t for _, t in rows], "targets")
    return {"encoder_input_tokens": self._padded([i for i, _ in rows], "inputs"),
            "decoder_target_tokens": targets,
            # Decoder inputs: the targets shifted right, starting from 0 (T5's start id).
            "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
            "decoder_loss_weights": (targets != 0).astype(np.float32)}

  # --- Helpers ---------------------------------------------------------------------------

  def _options(self, decode: Decode) -> DecodeOptions:
    options = DecodeOptions(decode) if isinstance(decode, str) else (decode or DecodeOptions())
    return dataclasses.replace(
        options, eos_id=self.vocabulary.eos_id,
        max_decode_length=options.max_decode_length or self.feature_lengths["targets"])

  def _chunks(self, rows: list) -> list[list]:
    return [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]

  def _padded(self, rows: Sequence[list[int]], feature: str) -> np.ndarray:
    array = np.zeros((self.batch_size, self.feature_lengths[feature]), np.int32)
    for i in range(self.batch_size):
      ids = rows[i] if i < len(rows) else rows[0]   # filler rows, dropped from the results
      array[i, :len(ids)] = ids
    return array


# Compiled once per (model config, decoding) and shared by every object of that model
# (e.g. a MODEL_DIR's and its exported folder's), since jit caches by function.
@functools.lru_cache(maxsize=None)
def _compiled_predict(config, options: DecodeOptions) -> Callable:
  model = EncoderDecoderModel(config)
  return jax.jit(lambda params, tokens, rng: model.predict_batch(
      params, {"encoder_input_tokens": tokens}, decode=options, rng=rng))


@functools.lru_cache(maxsize=None)
def _compiled_score(config) -> Callable:
  return jax.jit(EncoderDecoderModel(config).score_batch)


class Canary(Seq2SeqTool):
  """The dialogue safety model: a context -> a safety label and the rules-of-thumb."""

  def chirp(self, contexts: Union[Context, Sequence[Context]], *, decode: Decode = None,
            progress: Progress = None) -> list[CanaryOutput]:
    """Canary's output for each context (a lone string is one context)."""
    if isinstance(contexts, str):
      contexts = [contexts]
    texts = [self.inputs_text(c) for c in contexts]
    return self._parsed(texts, decode, progress)

  @staticmethod
  def parse(prediction: str, inputs: str = "") -> CanaryOutput:
    label, rots = formatting.parse_canary_output(prediction)
    return CanaryOutput(label, rots, prediction, inputs)


class Prost(Seq2SeqTool):
  """The prosocial dialogue agent: a context (and optionally its RoTs) -> a response."""

  def inputs_text(self, context: Context,
                  rots: Union[str, Sequence[str], None] = None) -> str:
    """The context as the tasks write it; with `rots`, followed by them as in task
    prosocial_dialog_prost_gold_rot (`... User: <utterance> RoT: <rot>, <rot>`)."""
    text = formatting.context_text(context)
    if rots is None:
      return text
    return formatting.gold_rot_context(text, [rots] if isinstance(rots, str) else list(rots))

  def respond(self, history: Context, rots: Union[str, Sequence[str], None] = None, *,
              decode: Decode = None) -> str:
    """Prost's response to `history` (one context); `rots` given: the gold-RoT input."""
    return self.generate([history], None if rots is None else [rots], decode=decode)[0].response

  def generate(self, histories: Sequence[Context],
               rots: Optional[Sequence[Union[str, Sequence[str], None]]] = None, *,
               decode: Decode = None, progress: Progress = None) -> list[ProstOutput]:
    """Prost's output for each context, with its RoTs (`rots[i]` for `histories[i]`)."""
    if rots is not None and len(rots) != len(histories):
      raise ValueError(f"{len(histories)} histories but {len(rots)} RoT lists")
    texts = [self.inputs_text(h, None if rots is None else rots[i])
             for i, h in enumerate(histories)]
    return self._parsed(texts, decode, progress)

  @staticmethod
  def parse(prediction: str, inputs: str = "") -> ProstOutput:
    rots, response = formatting.parse_prost_output(prediction)
    return ProstOutput(response, rots, prediction, inputs)


def open_tool(path: str, *, step: Step = "latest",
              feature_lengths: Optional[dict[str, int]] = None, **options) -> Seq2SeqTool:
  """Canary or Prost, whichever the model at `path` is (`Pretrained.kind`)."""
  pretrained = load_pretrained(path, step=step, feature_lengths=feature_lengths)
  return (Prost if pretrained.kind == PROST else Canary)(pretrained, **options)
