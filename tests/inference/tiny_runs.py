"""Tiny Canary and Prost runs on the shipped sample, and the sample's dialogues as a user
would pass them (utterance lists), for the tests of the inference tools and the CLI."""

import numpy as np
import seqio

import tasks
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.data.prosocial_dialog import CORPUS
from prosocial_jax.models import prost_config, t5_1_1_config
from prosocial_jax.training.optimizers import adam
from prosocial_jax.training.trainer import train

# Short enough that later turns of the sample's dialogues are cut from the left.
LENGTHS = {"inputs": 64, "targets": 16}
SMALL = dict(vocab_size=1024, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64)


def train_tiny(model_dir, task, config, *, steps, eval_at_end=False):
  """A few steps of `config` on `task` (sample data, batch 8), one checkpoint at the end;
  with `eval_at_end` the SeqIO evaluation writes MODEL_DIR/inference_eval/."""
  try:
    return train(model_dir=str(model_dir), mixture_or_task_name=task,
                 task_feature_lengths=LENGTHS, batch_size=8, model_config=config,
                 optimizer=adam(learning_rate=3e-3), data_root=sample_data_root(),
                 train_steps=steps, log_every=steps, checkpoint_every=1000,
                 eval_at_end=eval_at_end)
  finally:
    tasks.set_data_root(None)


def tiny_canary(model_dir, *, steps=10, eval_at_end=True):
  return train_tiny(model_dir, "prosocial_dialog_canary", t5_1_1_config("tiny", **SMALL),
                    steps=steps, eval_at_end=eval_at_end)


def tiny_prost(model_dir, *, steps=2):
  return train_tiny(model_dir, "prosocial_dialog_prost_rot_response",
                    prost_config("tiny", num_encoder_layers=1, num_decoder_layers=2, **SMALL),
                    steps=steps)


def validation_turns():
  """(utterances so far, oldest first, ending with the turn's own; the turn) for every
  turn of the sample's validation dialogues, in file order."""
  turns = []
  for dialogue in CORPUS.load_split("validation", sample_data_root()):
    history = []
    for turn in dialogue.turns:
      history.append(turn.text)
      turns.append((list(history), turn))
      history.append(turn.response or "")
  return turns


def task_examples(task_name, split="validation"):
  """The SeqIO task's examples (in file order), tokenized and cut to LENGTHS."""
  tasks.set_data_root(sample_data_root())
  try:
    dataset = seqio.get_mixture_or_task(task_name).get_dataset(
        sequence_length=LENGTHS, split=split, shuffle=False)
    return [{k: v.decode() if isinstance(v, bytes) else
             (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in example.items()}
            for example in dataset.as_numpy_iterator()]
  finally:
    tasks.set_data_root(None)
