"""The exported tokenizer gives the ids our SeqIO tasks gave, and decodes them back the same.

SentencePiece: the project's sample vocabulary (BPE, byte fallback, no dummy prefix,
the safety labels as user-defined pieces) with 0 and 10 extra ids, and a Unigram model
trained here with T5's defaults (NFKC charsmap, dummy prefix); byte: seqio's
ByteVocabulary. Texts: the shipped sample's Canary inputs and targets, plus texts that
probe whitespace, Unicode, byte fallback and the label pieces.
"""

import io
import os
import types

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
seqio = pytest.importorskip("seqio")

import tasks  # noqa: E402  (after the skips: TensorFlow is heavy)
from prosocial_jax.checkpoints.exporters.errors import ExportError  # noqa: E402
from prosocial_jax.checkpoints.exporters.tokenizer import (SPIECE, folder_vocabulary,  # noqa: E402
                                                           write_tokenizer)
from prosocial_jax.data.data_root import sample_data_root  # noqa: E402
from tasks.prosocial_dialog import CANARY_TASK  # noqa: E402
from tasks.vocabularies import DEFAULT_VOCAB_PATH  # noqa: E402

CONFIG = types.SimpleNamespace(vocab_size=2048)  # only vocab_size is read (and max_positions)
LENGTHS = {"inputs": 192, "targets": 48}  # the quickstart's
PROBES = [
    "User: I skipped my friend's party. Bot: He might feel hurt. User: He'll get over it.",
    "__needs_caution__ It's wrong to lie, You should apologize.",
    "__casual__", "a__casual__b", "User: ok __needs_intervention__! __casual__ x",
    "  leading and trailing  ", "double  and   triple spaces", "tab\there", "new\nline\n",
    "\n newline first", "emoji 😀👍🏽 ok", "日本語のテキスト", "café naïve e\u0301",
    "\u00a0no-break\u00a0space", "ＦＵＬＬ width ﬁ", "{curly} <angle> [square] ~^|",
    "\u2581literal meta", "", " ",
]


@pytest.fixture(scope="module")
def canary_texts():
  """The sample's Canary validation and train examples, inputs and targets un-cut."""
  tasks.set_data_root(sample_data_root())
  tasks.set_vocabulary(DEFAULT_VOCAB_PATH, extra_ids=0)
  try:
    task = seqio.get_mixture_or_task(CANARY_TASK)
    texts = []
    for split in ("validation", "train"):
      ds = task.get_dataset({"inputs": 100_000, "targets": 100_000}, split=split, shuffle=False)
      for ex in ds.as_numpy_iterator():
        texts += [ex["inputs_pretokenized"].decode(), ex["targets_pretokenized"].decode()]
    return texts
  finally:
    tasks.set_data_root(None)
    tasks.set_vocabulary(None)


def _export_sentencepiece(path, extra_ids, output_dir, inputs_length=None):
  vocab = seqio.SentencePieceVocabulary(str(path), extra_ids=extra_ids)
  record = {"kind": "sentencepiece", "path": str(path), "vocab_size": vocab.vocab_size,
            "extra_ids": extra_ids, "sha256": "unused", "source": str(path)}
  special = write_tokenizer(record, str(output_dir), CONFIG, inputs_length=inputs_length)
  return vocab, special, transformers.AutoTokenizer.from_pretrained(str(output_dir))


def _assert_same_as_seqio(tokenizer, vocab, texts):
  for text in texts:
    expected = list(vocab.encode(text)) + [vocab.eos_id]  # our tasks append EOS
    assert tokenizer(text)["input_ids"] == expected, repr(text)
    assert tokenizer.decode(expected, skip_special_tokens=True) == vocab.decode(expected), repr(text)


@pytest.mark.parametrize("extra_ids", [0, 10])
def test_sample_vocabulary_gives_seqio_ids(tmp_path, canary_texts, extra_ids):
  vocab, special, tokenizer = _export_sentencepiece(DEFAULT_VOCAB_PATH, extra_ids, tmp_path)
  assert special == {"pad_token_id": 0, "eos_token_id": 1, "unk_token_id": 2,
                     "decoder_start_token_id": 0}
  assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
  assert len(tokenizer) == vocab.vocab_size
  assert (tmp_path / SPIECE).read_bytes() == open(DEFAULT_VOCAB_PATH, "rb").read()
  # ... and read back as the checkpoint recorded it (inference from an exported folder)
  assert folder_vocabulary(str(tmp_path)) == {"kind": "sentencepiece", "extra_ids": extra_ids,
                                              "path": str(tmp_path / SPIECE)}
  _assert_same_as_seqio(tokenizer, vocab, canary_texts + PROBES)
  # The labels are single pieces that decoding keeps (they are not special tokens).
  label = tokenizer("__needs_caution__")["input_ids"]
  assert len(label) == 2 and tokenizer.decode(label, skip_special_tokens=True) == "__needs_caution__"
  if extra_ids:  # sentinels at the end, <extra_id_0> last: seqio's order and HF T5's
    ids = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(extra_ids)])
    assert ids == list(range(vocab.vocab_size - 1, vocab.vocab_size - 1 - extra_ids, -1))


@pytest.mark.parametrize("input_length", [LENGTHS["inputs"], 32])
def test_quickstart_task_inputs(tmp_path, input_length):
  """The first 50 validation inputs of the quickstart's task are what the exported
  tokenizer makes of their text; at 32 tokens (most are cut) too, since the tokenizer
  truncates from the left as the task does, keeping EOS, to the run's inputs length
  (`model_max_length`: `truncation=True` needs no `max_length`)."""
  _, _, tokenizer = _export_sentencepiece(DEFAULT_VOCAB_PATH, 0, tmp_path, input_length)
  assert tokenizer.model_max_length == input_length
  tasks.set_data_root(sample_data_root())
  tasks.set_vocabulary(DEFAULT_VOCAB_PATH, extra_ids=0)
  try:
    ds = seqio.get_mixture_or_task(CANARY_TASK).get_dataset(
        {**LENGTHS, "inputs": input_length}, split="validation", shuffle=False)
    examples = list(ds.take(50).as_numpy_iterator())
  finally:
    tasks.set_data_root(None)
    tasks.set_vocabulary(None)
  assert len(examples) >= 20
  cut = 0
  for ex in examples:
    text = ex["inputs_pretokenized"].decode()
    ids = tokenizer(text, truncation=True)["input_ids"]
    assert ids == ex["inputs"].tolist(), text
    cut += len(tokenizer(text)["input_ids"]) > input_length
  assert cut > (len(examples) // 2 if input_length == 32 else -1)


def test_unigram_with_dummy_prefix_gives_seqio_ids(tmp_path, canary_texts):
  """T5-style SentencePiece (Unigram, NFKC charsmap, dummy prefix), with a user-defined
  piece and byte fallback: the other code paths of the tokenizer.json writer."""
  spm = pytest.importorskip("sentencepiece")
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(canary_texts), model_writer=model, vocab_size=400,
      model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
      byte_fallback=True, user_defined_symbols=["__casual__"], minloglevel=2)
  path = tmp_path / "unigram.model"
  path.write_bytes(model.getvalue())
  vocab, _, tokenizer = _export_sentencepiece(path, 5, tmp_path / "out")
  _assert_same_as_seqio(tokenizer, vocab, canary_texts + PROBES + ["__casual__ x"])


@pytest.mark.parametrize("extra_ids", [0, 125])
def test_byte_vocabulary_gives_seqio_ids(tmp_path, canary_texts, extra_ids):
  vocab = seqio.ByteVocabulary(extra_ids=extra_ids)
  special = write_tokenizer({"kind": "byte", "vocab_size": vocab.vocab_size,
                             "extra_ids": extra_ids}, str(tmp_path), CONFIG)
  assert special == {"pad_token_id": 0, "eos_token_id": 1, "unk_token_id": 2,
                     "decoder_start_token_id": 0}
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  assert type(tokenizer).__name__ == "ByT5Tokenizer"
  assert folder_vocabulary(str(tmp_path)) == {"kind": "byte", "extra_ids": extra_ids}
  _assert_same_as_seqio(tokenizer, vocab, canary_texts[:40] + PROBES)
  if extra_ids:  # ByT5Tokenizer alone would number them upwards from 259
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == vocab.vocab_size - 1
    assert tokenizer.convert_tokens_to_ids(f"<extra_id_{extra_ids - 1}>") == 259


def test_refusals(tmp_path):
  with pytest.raises(ExportError, match="run_a/checkpoint_7 records no vocabulary"):
    write_tokenizer({}, str(tmp_path), CONFIG, checkpoint="run_a/checkpoint_7")
  with pytest.raises(ExportError, match="kind 'hf_tokenizer'"):
    write_tokenizer({"kind": "hf_tokenizer", "source": "x"}, str(tmp_path), CONFIG)
  with pytest.raises(ExportError, match="1024 ids but the model's embedding only 512"):
    write_tokenizer({"kind": "sentencepiece", "path": DEFAULT_VOCAB_PATH, "vocab_size": 1024,
                     "extra_ids": 0}, str(tmp_path), types.SimpleNamespace(vocab_size=512))
  with pytest.raises(ExportError, match="not the run's model file"):
    write_tokenizer({"kind": "sentencepiece", "path": DEFAULT_VOCAB_PATH, "vocab_size": 1034,
                     "extra_ids": 0}, str(tmp_path), CONFIG)
  with pytest.raises(ExportError, match="expected"):
    write_tokenizer({"kind": "byte", "vocab_size": 300, "extra_ids": 0}, str(tmp_path), CONFIG)
  bogus = tmp_path / "bogus.model"
  bogus.write_bytes(b"not a sentencepiece model")
  with pytest.raises(ExportError, match="not a readable SentencePiece model"):
    write_tokenizer({"kind": "sentencepiece", "path": str(bogus)}, str(tmp_path / "o"), CONFIG)
  blenderbot = tmp_path / "blenderbot"   # byte-level BPE files: not a SeqIO vocabulary
  blenderbot.mkdir()
  (blenderbot / "tokenizer.json").write_text("{}")
  with pytest.raises(ExportError, match="neither spiece.model nor a ByT5 tokenizer"):
    folder_vocabulary(str(blenderbot))
