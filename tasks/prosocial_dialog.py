"""SeqIO tasks on ProsocialDialog (direct-download format, read from the data root).

prosocial_dialog_canary — one example per turn:
  inputs   the dialogue history up to this turn (see prosocial_jax.data.prosocial_dialog:
           "User: ... Bot: ... User: ..."), cut from the LEFT to the feature length
           so the most recent turns survive, then EOS;
  targets  "<safety label> <rot>, <rot>" (the label alone for casual turns), then EOS;
  plus inputs_pretokenized, targets_pretokenized (the full strings) and safety_label.
Splits: train, validation, test (test needs a test file in the corpus folder; a
missing one is reported when that split is built).
"""

from __future__ import annotations

import functools

import seqio
import tensorflow as tf

from prosocial_jax.data import prosocial_dialog as reader
from prosocial_jax.evaluation import metrics
from tasks import data_sources, preprocessors, vocabularies

CANARY_TASK = "prosocial_dialog_canary"
SPLITS = ("train", "validation", "test")

_CANARY_COLUMNS = {"context": tf.string, "target": tf.string, "safety_label": tf.string}


def canary_dataset(split: str, shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
  """The raw Canary examples of `split` (context, target, safety_label) from the data root."""
  del shuffle_files, seed  # One file per split; seqio shuffles the examples.
  dialogues = reader.load_split(split, data_sources.get_data_root())
  return data_sources.examples_to_dataset(reader.canary_examples(dialogues), _CANARY_COLUMNS)


def _register(name: str, task_kwargs: dict) -> None:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, **task_kwargs)


def _output_features() -> dict[str, seqio.Feature]:
  vocab = vocabularies.get_default_vocabulary()
  return {"inputs": seqio.Feature(vocab, add_eos=True, required=True),
          "targets": seqio.Feature(vocab, add_eos=True)}


_register(CANARY_TASK, dict(
    source=seqio.FunctionDataSource(canary_dataset, splits=SPLITS),
    output_features=_output_features(),
    preprocessors=[
        functools.partial(seqio.preprocessors.rekey,
                          key_map={"inputs": "context", "targets": "target",
                                   "safety_label": "safety_label"}),
        seqio.preprocessors.tokenize,  # keeps inputs_pretokenized / targets_pretokenized
        preprocessors.left_truncate,
        seqio.preprocessors.append_eos_after_trim,
    ],
    postprocess_fn=preprocessors.canary_postprocessor,
    metric_fns=[metrics.safety_accuracy, metrics.perplexity],
))
