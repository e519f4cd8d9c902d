"""SeqIO preprocessors and postprocessors shared by the tasks.

Postprocessors return strings (what the metric functions compare) that also carry
the parsed parts — `CanaryOutput.label` / `.rots`, `ProstOutput.rots` /
`.response` — for callers that want the parts. The metric functions
(prosocial_jax/evaluation/metrics.py) parse the strings themselves with the same
parsers (prosocial_jax/data/formatting.py), so they also take plain strings.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import seqio
import tensorflow as tf

from prosocial_jax.data import encoding, formatting
from prosocial_jax.data.labels import CASUAL, NEEDS_CAUTION


def left_truncate(dataset: tf.data.Dataset,
                  output_features: Mapping[str, seqio.Feature],
                  sequence_length: Mapping[str, int | None] | None = None,
                  keys: Sequence[str] = ("inputs",)) -> tf.data.Dataset:
  """Keeps the LAST tokens of `keys`, so a dialogue's most recent turns survive
  (`prosocial_jax.data.encoding.encode_input` is the same rule, for inference).

  Leaves room for EOS when the feature has `add_eos`; run it after tokenizing and
  before `seqio.preprocessors.append_eos_after_trim`. Without a sequence length
  (e.g. when inspecting a task) nothing is cut.
  """
  if not sequence_length:
    return dataset
  limits = {}
  for key in keys:
    length = sequence_length.get(key)
    if length is not None:
      limits[key] = encoding.kept_input_length(length, output_features[key].add_eos)
  if not limits:
    return dataset

  def truncate(features):
    features = dict(features)
    for key, limit in limits.items():
      tokens = features[key]
      features[key] = tokens[tf.maximum(tf.shape(tokens)[0] - limit, 0):]
    return features

  return dataset.map(truncate, num_parallel_calls=tf.data.AUTOTUNE)


class CanaryOutput(str):
  """A Canary output or target: the stripped text (what metrics compare), parsed.

  `label` is the leading safety token (None when there is none), `rots` the RoTs.
  """
  label: str | None
  rots: list[str]

  def __new__(cls, text: str):
    out = super().__new__(cls, text)
    out.label, out.rots = formatting.parse_canary_output(text)
    return out


class ProstOutput(str):
  """A Prost output or target: the stripped text, with `rots` and `response` parsed out."""
  rots: list[str]
  response: str

  def __new__(cls, text: str):
    out = super().__new__(cls, text)
    out.rots, out.response = formatting.parse_prost_output(text)
    return out


class RotsOutput(str):
  """RoTs joined by ", ": the stripped text, with `rots` split out."""
  rots: list[str]

  def __new__(cls, text: str):
    out = super().__new__(cls, text)
    out.rots = formatting.split_rots(text)
    return out


def _text(output_or_target: str | bytes) -> str:
  # SentencePiece may drop or add a leading space when decoding, hence the strip.
  if isinstance(output_or_target, bytes):
    # A byte-level model can write bytes that are not UTF-8: a wrong answer, not a crash.
    output_or_target = output_or_target.decode("utf-8", errors="replace")
  return output_or_target.strip()


def canary_postprocessor(output_or_target: str | bytes, example=None,
                         is_target: bool = False) -> CanaryOutput:
  """Decoded Canary output (or target) → CanaryOutput (a str: label and RoTs parsed)."""
  del example, is_target
  return CanaryOutput(_text(output_or_target))


def binary_safety_postprocessor(output_or_target: str | bytes, example=None,
                                is_target: bool = False) -> CanaryOutput:
  """Canary output → `__casual__` or `__needs_caution__` (any non-casual label), for binary
  benchmarks such as ToxiChat; text with no label stays as it is (and counts as wrong)."""
  del example, is_target
  parsed = CanaryOutput(_text(output_or_target))
  if parsed.label is None:
    return parsed
  return CanaryOutput(CASUAL if parsed.label == CASUAL else NEEDS_CAUTION)


def rots_postprocessor(output_or_target: str | bytes, example=None, is_target: bool = False) -> RotsOutput:
  del example, is_target
  return RotsOutput(_text(output_or_target))


def prost_postprocessor(output_or_target: str | bytes, example=None, is_target: bool = False) -> ProstOutput:
  """Prost output → ProstOutput (a str: `rots` and `response` parsed; a bare response has no RoTs)."""
  del example, is_target
  return ProstOutput(_text(output_or_target))


def text_postprocessor(output_or_target: str | bytes, example=None, is_target: bool = False) -> str:
  """Decoded text, stripped (responses, judgments)."""
  del example, is_target
  return _text(output_or_target)
