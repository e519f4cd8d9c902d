"""SeqIO preprocessors shared by the tasks."""

from __future__ import annotations

from typing import Mapping, Sequence

import seqio
import tensorflow as tf


def left_truncate(dataset: tf.data.Dataset,
                  output_features: Mapping[str, seqio.Feature],
                  sequence_length: Mapping[str, int | None] | None = None,
                  keys: Sequence[str] = ("inputs",)) -> tf.data.Dataset:
  """Keeps the LAST tokens of `keys`, so a dialogue's most recent turns survive.

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
      limits[key] = max(length - (1 if output_features[key].add_eos else 0), 0)
  if not limits:
    return dataset

  def truncate(features):
    features = dict(features)
    for key, limit in limits.items():
      tokens = features[key]
      features[key] = tokens[tf.maximum(tf.shape(tokens)[0] - limit, 0):]
    return features

  return dataset.map(truncate, num_parallel_calls=tf.data.AUTOTUNE)


def canary_postprocessor(output_or_target: str | bytes, example=None, is_target: bool = False) -> str:
  """Decoded Canary output (or target) → stripped string; metrics parse it further.

  SentencePiece may drop or add a leading space when decoding, hence the strip.
  """
  del example, is_target
  if isinstance(output_or_target, bytes):
    output_or_target = output_or_target.decode("utf-8")
  return output_or_target.strip()
