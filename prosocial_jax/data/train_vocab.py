"""Trains the SentencePiece vocabulary of a from-scratch model on ProsocialDialog's train split.

    python -m prosocial_jax.data train-vocab --data_root DIR --output PREFIX \
        [--vocab_size 1024] [--corpus prosocial_dialog --corpus daily_dialog ...]

(or `python -m prosocial_jax.data.train_vocab ...`) writes PREFIX.model and
PREFIX.vocab (`--output` may also end in `.model`). By default only
ProsocialDialog's train split is read; `--corpus` (repeatable) names the corpora
whose train split to read instead, e.g. every corpus of a mixture. The shipped
`tasks/vocab/prosocial_sample.model` was made from the shipped sample:

    python -m prosocial_jax.data.train_vocab \
        --data_root prosocial_jax/data/sample --output tasks/vocab/prosocial_sample

Choices: BPE with byte fallback (the paper uses byte-level BPE: no input is ever
<unk>), the five safety labels as user-defined symbols (one token each),
pad 0 / eos 1 / unk 2 and no BOS (the seqio / T5 ids), `hard_vocab_limit=False`
(a small corpus may not support the asked size; the vocabulary is then smaller),
no Unicode normalization (`identity`, as byte-level BPE; runs of spaces are
still collapsed), and no dummy prefix, so a target's first token is its label.
Training is deterministic: one thread, a fixed seed, no sentence sampling, and
the sentences are fed from memory so no file path ends up in the model.

The training sentences are what the model reads and writes: each ProsocialDialog
dialogue written out as a Canary context (speaker marks included) and each Canary
target; each casual conversation written out as a context; each social-norm row's
context and target. Corpora are read in the order given, files in file order.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Iterable, Iterator, Sequence

import sentencepiece as spm
import tensorflow as tf

from prosocial_jax.data import corpus, formatting, prosocial_dialog
from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.data.reading import Conversation, NormExample

DEFAULT_VOCAB_SIZE = 1024
SEED = 0


def vocab_sentences(dialogues: Iterable[prosocial_dialog.Dialogue]) -> Iterator[str]:
  """The training text, in file order: each whole dialogue as a Canary context reads it
  (speaker marks, oldest first, the last response included), then each turn's target."""
  for dialogue in dialogues:
    utterances = []
    for turn in dialogue.turns:
      utterances.append(f"{formatting.USER_MARK} {turn.text.strip()}")
      if turn.response:
        utterances.append(f"{formatting.BOT_MARK} {turn.response.strip()}")
    yield formatting.UTTERANCE_SEPARATOR.join(utterances)
    for turn in dialogue.turns:
      yield formatting.canary_target(turn.safety_label, turn.rots)


def train_sentencepiece(sentences: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> bytes:
  """Trains the BPE model; returns the serialized model proto."""
  model = io.BytesIO()
  spm.set_random_generator_seed(SEED)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(list(sentences)),
      model_writer=model,
      model_type="bpe",
      vocab_size=vocab_size,
      byte_fallback=True,
      character_coverage=1.0,
      normalization_rule_name="identity",
      add_dummy_prefix=False,
      user_defined_symbols=list(SAFETY_LABELS),
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      hard_vocab_limit=False,
      num_threads=1,
      input_sentence_size=0,
      shuffle_input_sentence=False,
      max_sentence_length=1 << 16,
      minloglevel=2,
  )
  return model.getvalue()


def vocab_text(model_proto: bytes) -> str:
  """The human-readable `.vocab` listing (piece <TAB> score), as spm_train writes it."""
  processor = spm.SentencePieceProcessor(model_proto=model_proto)
  return "".join(f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
                 for i in range(processor.get_piece_size()))


def corpus_sentences(name: str, records) -> Iterator[str]:
  """The training text of one corpus's records (see the module docstring)."""
  if name == prosocial_dialog.CORPUS.name:
    yield from vocab_sentences(records)
    return
  for record in records:
    if isinstance(record, Conversation):
      yield formatting.format_history(record.utterances)
    elif isinstance(record, NormExample):  # the context and target of its stage-1 example
      yield formatting.format_history(record.utterances)
      yield formatting.normalize_text(record.target)
    else:
      raise ValueError(f"{name} is evaluation data; train the vocabulary on training corpora.")


def train_vocab(data_root: str, output: str, vocab_size: int = DEFAULT_VOCAB_SIZE,
                split: str = "train", corpora: Sequence[str] = (prosocial_dialog.CORPUS.name,)) -> str:
  """Trains on `split` of `corpora` under `data_root`; returns the `.model` path."""
  prefix = output[:-len(".model")] if output.endswith(".model") else output
  sentences = [s for name in corpora
               for s in corpus_sentences(name, corpus(name).load_split(split, data_root))]
  model_proto = train_sentencepiece(sentences, vocab_size)
  parent = os.path.dirname(prefix)
  if parent:
    tf.io.gfile.makedirs(parent)
  with tf.io.gfile.GFile(prefix + ".model", "wb") as f:
    f.write(model_proto)
  with tf.io.gfile.GFile(prefix + ".vocab", "w") as f:
    f.write(vocab_text(model_proto))
  return prefix + ".model"


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m prosocial_jax.data train-vocab",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_root", required=True,
                      help="data root holding prosocial_dialog/ (e.g. prosocial_jax/data/sample)")
  parser.add_argument("--output", required=True, help="output prefix (writes PREFIX.model, PREFIX.vocab)")
  parser.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE)
  parser.add_argument("--split", default="train")
  parser.add_argument("--corpus", action="append", dest="corpora",
                      help="a corpus folder to read (repeatable; default: prosocial_dialog)")
  args = parser.parse_args(argv)
  path = train_vocab(args.data_root, args.output, args.vocab_size, args.split,
                     corpora=args.corpora or (prosocial_dialog.CORPUS.name,))
  size = spm.SentencePieceProcessor(model_file=path).get_piece_size()
  print(f"Wrote {path} ({size} pieces) and {path[:-len('.model')]}.vocab")
  return 0


if __name__ == "__main__":
  sys.exit(main())
