"""Files recorded beside the checkpoints: the vocabulary and the gin config.

A model is only usable with the vocabulary it was trained with, so the trainer
copies the vocabulary into MODEL_DIR on the first run and evaluation/export read
it from there.
"""

from __future__ import annotations

import hashlib
import os

import tensorflow as tf

VOCABULARY_DIR = "vocabulary"


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    digest.update(f.read())
  return digest.hexdigest()


def record_vocabulary(model_dir: str, vocab_path: str) -> str:
  """Copies the SentencePiece model into MODEL_DIR/vocabulary/; returns the copy's path."""
  target_dir = os.path.join(model_dir, VOCABULARY_DIR)
  tf.io.gfile.makedirs(target_dir)
  target = os.path.join(target_dir, os.path.basename(vocab_path))
  tf.io.gfile.copy(vocab_path, target, overwrite=True)
  return target


def write_text(model_dir: str, name: str, text: str) -> str:
  path = os.path.join(model_dir, name)
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)
  return path
