"""The run's vocabulary as Hugging Face tokenizer files, giving the ids SeqIO gave.

    vocabulary (stored meta)   files written                      AutoTokenizer class
    sentencepiece (.model)     tokenizer.json, spiece.model,      PreTrainedTokenizerFast
                               tokenizer_config.json,             (TokenizersBackend in v5)
                               special_tokens_map.json
    byte                       tokenizer_config.json,             ByT5Tokenizer
                               special_tokens_map.json

`AutoTokenizer.from_pretrained(DIR)` then turns a text into exactly the ids our
SeqIO tasks fed the model: `vocabulary.encode(text) + [EOS]`. `folder_vocabulary(DIR)`
reads the run's vocabulary back from these files (inference from an exported folder).

Why not `T5Tokenizer` for SentencePiece: in transformers 5 it always rebuilds a
Unigram model behind a whitespace split and a "▁" prefix, whatever the .model
says. Our vocabularies are BPE with byte fallback, no dummy prefix and
user-defined label pieces (`prosocial_jax.data.train_vocab`); as T5Tokenizer the
sample vocabulary gave other ids for 226 of 272 task texts. So tokenizer.json is
written here from the model's own settings (SentencePiece's order: charsmap,
extra-whitespace removal, "▁" escaping, dummy prefix; user-defined pieces whole;
BPE merges ranked by piece score), as transformers' own generic SentencePiece
conversion does, without needing transformers or tokenizers at export time.
spiece.model is the unchanged SentencePiece file, for SeqIO / T5X users:
`seqio.SentencePieceVocabulary(DIR/spiece.model, extra_ids=N)`.

Extra ids (sentinels) are `<extra_id_i>` at id `base + N - 1 - i`: the last id is
`<extra_id_0>`, as in SeqIO (which appends them reversed) and Hugging Face's T5.
Padding and the decoder's start are id 0 (SeqIO's feature converters), EOS and
UNK the model's own.

Known differences (checked on ~173k dialogue texts: none other): Hugging Face reads
the names of special tokens typed in a text ("</s>", "<pad>", "<extra_id_0>") as
those tokens, SentencePiece spells them out; decoding with skip_special_tokens
drops UNK where SentencePiece writes " ⁇ ", writes U+FFFD per byte of an invalid
UTF-8 byte sequence where SentencePiece keeps the valid bytes, and strips one
leading space where SentencePiece strips one per leading "▁" piece.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Optional

from etils import epath

from prosocial_jax.checkpoints.exporters.errors import ExportError

PAD_ID = 0                # SeqIO pads with 0 and T5-style decoders start from it
SPIECE = "spiece.model"
T5_MAX_LENGTH = 512       # relative positions have no hard limit; 512 is T5's usual length
BYTE_SPECIALS = ("<pad>", "</s>", "<unk>")   # seqio.ByteVocabulary: pad 0, eos 1, unk 2
BYTE_BASE = 3 + 256

# SentencePiece piece and model types (sentencepiece_model.proto)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4
UNIGRAM, BPE = 1, 2
META = "\u2581"           # "▁", SentencePiece's escaped space


def check_vocabulary(vocabulary: dict[str, Any], config, *,
                     checkpoint: Optional[str] = None) -> str:
  """The vocabulary's kind, after checking it can be exported with `config`
  (cheap: call it before reading parameters)."""
  where = checkpoint or "the checkpoint"
  if not vocabulary:
    raise ExportError(f"{where} records no vocabulary (its meta has no 'vocabulary'), so "
                      "no tokenizer can be written; a run records it when it starts.")
  kind = vocabulary.get("kind", "sentencepiece")
  if kind not in ("sentencepiece", "byte"):
    raise ExportError(f"{where}: vocabulary kind {kind!r} cannot be exported; "
                      "exportable: 'sentencepiece', 'byte'.")
  if kind == "sentencepiece" and not vocabulary.get("path"):
    raise ExportError(f"{where}: the SentencePiece vocabulary record has no 'path' "
                      "(open the checkpoint with prosocial_jax.checkpoints.stored).")
  size = vocabulary.get("vocab_size")
  if size is not None and size > config.vocab_size:
    raise ExportError(f"{where}: the vocabulary has {size} ids but the model's embedding "
                      f"only {config.vocab_size}.")
  return kind


def write_tokenizer(vocabulary: dict[str, Any], output_dir: str, config, *,
                    checkpoint: Optional[str] = None,
                    inputs_length: Optional[int] = None) -> dict[str, int]:
  """Writes the tokenizer files of `vocabulary` into `output_dir`; returns the special
  ids {pad,eos,unk,decoder_start}_token_id for config.json / generation_config.json.

  `model_max_length` is the run's `inputs` length when known (`truncation=True` then
  cuts inputs exactly as the tasks did), else the model's position table or T5's 512."""
  kind = check_vocabulary(vocabulary, config, checkpoint=checkpoint)
  extra_ids = int(vocabulary.get("extra_ids") or 0)
  limits = [int(n) for n in (getattr(config, "max_positions", 0), inputs_length) if n]
  max_length = min(limits) if limits else T5_MAX_LENGTH
  directory = epath.Path(output_dir)
  directory.mkdir(parents=True, exist_ok=True)
  if kind == "byte":
    special, settings = _byte_settings(extra_ids, vocabulary.get("vocab_size"))
  else:
    special, settings = _write_sentencepiece(vocabulary, directory, extra_ids)
  extras = [f"<extra_id_{i}>" for i in range(extra_ids)]
  tokens = {"pad_token": special["pad"], "eos_token": special["eos"],
            "unk_token": special["unk"], "additional_special_tokens": extras}
  _write_json(directory / "special_tokens_map.json", tokens)
  _write_json(directory / "tokenizer_config.json", {
      **settings, **tokens,
      "model_max_length": max_length,
      "model_input_names": ["input_ids", "attention_mask"],
      "padding_side": "right",
      # Our tasks cut inputs from the left (the latest turns matter most), keeping EOS.
      "truncation_side": "left",
      # SentencePiece's decoding puts no space back and takes none away.
      "clean_up_tokenization_spaces": False})
  return {"pad_token_id": PAD_ID, "eos_token_id": special["eos_id"],
          "unk_token_id": special["unk_id"], "decoder_start_token_id": PAD_ID}


def folder_vocabulary(output_dir: str) -> dict[str, Any]:
  """The vocabulary record ({"kind", "path", "extra_ids"}, as a checkpoint's) of a folder
  `write_tokenizer` wrote: `spiece.model`, or ByT5Tokenizer's settings for the byte
  vocabulary. Extra ids are counted from the `<extra_id_i>` tokens listed (an
  explicit `extra_ids` wins). Any other tokenizer (e.g. BlenderBot's byte-level BPE)
  is an error: SeqIO cannot encode with it."""
  directory = epath.Path(output_dir)
  settings_file = directory / "tokenizer_config.json"
  try:
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
  except ValueError as error:
    raise ExportError(f"{settings_file} is not valid JSON: {error}") from None
  extra_ids = settings.get("extra_ids")
  if not isinstance(extra_ids, int):
    extra_ids = sum(1 for token in settings.get("additional_special_tokens") or ()
                    if isinstance(token, str) and re.fullmatch(r"<extra_id_\d+>", token))
  if (directory / SPIECE).exists():
    return {"kind": "sentencepiece", "path": str(directory / SPIECE), "extra_ids": extra_ids}
  if settings.get("tokenizer_class") == "ByT5Tokenizer":
    return {"kind": "byte", "extra_ids": extra_ids}
  raise ExportError(f"{output_dir} has neither {SPIECE} nor a ByT5 tokenizer, the two "
                    "vocabularies our SeqIO pipeline encodes with.")


def _byte_settings(extra_ids: int, recorded: Optional[int]):
  if recorded is not None and recorded != BYTE_BASE + extra_ids:
    raise ExportError(f"byte vocabulary recorded with {recorded} ids; {BYTE_BASE} + "
                      f"{extra_ids} extra ids = {BYTE_BASE + extra_ids} expected.")
  # ByT5Tokenizer numbers its own extra ids upwards from 259; the ids are given
  # explicitly so that <extra_id_0> is the last id, as in seqio.ByteVocabulary.
  added = {i: BYTE_SPECIALS[i] for i in range(3)}
  added.update({BYTE_BASE + extra_ids - 1 - i: f"<extra_id_{i}>" for i in range(extra_ids)})
  special = {"pad": "<pad>", "eos": "</s>", "unk": "<unk>", "eos_id": 1, "unk_id": 2}
  return special, {"tokenizer_class": "ByT5Tokenizer", "extra_ids": extra_ids,
                   "added_tokens_decoder": {str(i): _added(t) for i, t in added.items()}}


def _write_sentencepiece(vocabulary, directory: epath.Path, extra_ids: int):
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=import-outside-toplevel
  path = vocabulary["path"]
  data = epath.Path(path).read_bytes()
  try:
    proto = sentencepiece_model_pb2.ModelProto.FromString(data)
  except Exception as error:  # protobuf's DecodeError: not a SentencePiece model
    raise ExportError(f"{path} is not a readable SentencePiece model: {error}") from None
  base = len(proto.pieces)
  recorded = vocabulary.get("vocab_size")
  if recorded is not None and recorded != base + extra_ids:
    raise ExportError(f"{path} has {base} pieces + {extra_ids} extra ids, but the run "
                      f"recorded a vocabulary of {recorded} ids: not the run's model file.")
  spec = proto.trainer_spec
  if spec.eos_id < 0 or spec.unk_id < 0:
    raise ExportError(f"{path} defines no EOS or UNK piece; SeqIO tasks need both.")
  if spec.treat_whitespace_as_suffix or not proto.normalizer_spec.escape_whitespaces:
    raise ExportError(f"{path}: SentencePiece models with treat_whitespace_as_suffix or "
                      "without escape_whitespaces are not supported by the exporter.")
  (directory / SPIECE).write_bytes(data)
  _write_json(directory / "tokenizer.json", tokenizer_json(proto, extra_ids, source=path))
  pieces = proto.pieces
  special = {"pad": pieces[PAD_ID].piece, "eos": pieces[spec.eos_id].piece,
             "unk": pieces[spec.unk_id].piece, "eos_id": spec.eos_id, "unk_id": spec.unk_id}
  return special, {"tokenizer_class": "PreTrainedTokenizerFast"}


def tokenizer_json(proto, extra_ids: int, *, source: str = "model") -> dict[str, Any]:
  """A `tokenizers.Tokenizer` serialization that encodes like `proto` does in SeqIO
  (with `extra_ids` sentinels appended), plus EOS after each sequence."""
  pieces = list(proto.pieces)
  base = len(pieces)
  names = [p.piece for p in pieces] + [f"<extra_id_{i}>" for i in reversed(range(extra_ids))]
  spec, norm = proto.trainer_spec, proto.normalizer_spec
  specials = [i for i, p in enumerate(pieces) if p.type in (UNKNOWN, CONTROL)]
  added = [_added_token(i, names[i], special=True)
           for i in specials + list(range(base, base + extra_ids))]
  # SentencePiece finds user-defined pieces (our safety labels) anywhere in the
  # normalized text and emits them whole. As added tokens matched in the normalized
  # text they do the same (and stay in decoded text, not being special), unless a
  # dummy prefix is prepended: tokenizers would prepend it to the token itself too
  # ("▁__casual__"), so there they are split off after normalization instead, and BPE
  # emits such a pre-token whole because it is in the vocabulary (`ignore_merges`).
  user_defined = [i for i, p in enumerate(pieces) if p.type == USER_DEFINED]
  split_user_defined = bool(user_defined) and norm.add_dummy_prefix
  if not split_user_defined:
    added += [_added_token(i, names[i], special=False) for i in user_defined]
  pre_tokenizer = None
  if split_user_defined:
    pattern = "|".join(re.escape(names[i]) for i in sorted(
        user_defined, key=lambda i: len(names[i]), reverse=True))
    pre_tokenizer = {"type": "Split", "pattern": {"Regex": pattern},
                     "behavior": "Isolated", "invert": False}
  eos = names[spec.eos_id]
  eos_entry = {"SpecialToken": {"id": eos, "type_id": 0}}
  return {
      "version": "1.0", "truncation": None, "padding": None,
      "added_tokens": sorted(added, key=lambda token: token["id"]),
      "normalizer": _normalizer(norm),
      "pre_tokenizer": pre_tokenizer,
      "post_processor": {
          "type": "TemplateProcessing",
          "single": [{"Sequence": {"id": "A", "type_id": 0}}, eos_entry],
          "pair": [{"Sequence": {"id": "A", "type_id": 0}}, eos_entry,
                   {"Sequence": {"id": "B", "type_id": 0}}, eos_entry],
          "special_tokens": {eos: {"id": eos, "ids": [spec.eos_id], "tokens": [eos]}}},
      "decoder": _decoder(norm, spec.byte_fallback),
      "model": _model(proto, names, ignore_merges=split_user_defined, source=source),
  }


def _model(proto, names: list[str], *, ignore_merges: bool, source: str) -> dict[str, Any]:
  spec, pieces = proto.trainer_spec, proto.pieces
  if spec.model_type == BPE:
    return {"type": "BPE", "dropout": None, "unk_token": names[spec.unk_id],
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
            "byte_fallback": bool(spec.byte_fallback), "ignore_merges": ignore_merges,
            "vocab": {name: i for i, name in enumerate(names)}, "merges": _bpe_merges(pieces)}
  if spec.model_type == UNIGRAM:
    scores = [p.score for p in pieces] + [0.0] * (len(names) - len(pieces))
    return {"type": "Unigram", "unk_id": spec.unk_id, "byte_fallback": bool(spec.byte_fallback),
            "vocab": [[name, score] for name, score in zip(names, scores)]}
  raise ExportError(f"{source}: SentencePiece model type {spec.model_type} (word/char) is "
                    "not supported by the exporter; BPE and Unigram are.")


def _normalizer(norm) -> dict[str, Any]:
  """SentencePiece's normalization, in its order."""
  steps = []
  if norm.precompiled_charsmap:
    steps.append({"type": "Precompiled", "precompiled_charsmap":
                  base64.b64encode(norm.precompiled_charsmap).decode("ascii")})
  if norm.remove_extra_whitespaces:
    # Only spaces count: SentencePiece leaves other whitespace (newlines, tabs) alone.
    steps += [_replace({"Regex": r"\A +| +\z"}, ""), _replace({"Regex": " {2,}"}, " ")]
  steps.append(_replace({"String": " "}, META))
  if norm.add_dummy_prefix:
    # Here, not in a Metaspace pre-tokenizer, which skips the prefix when the text
    # began with spaces that were stripped ("  Hi"); SentencePiece doesn't.
    steps.append({"type": "Prepend", "prepend": META})
  return {"type": "Sequence", "normalizers": steps}


def _decoder(norm, byte_fallback: bool) -> dict[str, Any]:
  steps = [_replace({"String": META}, " ")]
  if byte_fallback:
    steps.append({"type": "ByteFallback"})
  steps.append({"type": "Fuse"})
  if norm.add_dummy_prefix or norm.remove_extra_whitespaces:
    # SentencePiece drops the first space of the text in either case (a generated
    # answer may well start with "▁It").
    steps.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
  return {"type": "Sequence", "decoders": steps}


def _bpe_merges(pieces) -> list:
  """Every split of a normal piece into two normal pieces, best piece score first:
  SentencePiece's BPE merges the adjacent pair whose union scores highest."""
  normal = {p.piece: (p.score, i) for i, p in enumerate(pieces) if p.type == NORMAL}
  ranked = sorted((-score, i, piece[:k], piece[k:]) for piece, (score, i) in normal.items()
                  for k in range(1, len(piece)) if piece[:k] in normal and piece[k:] in normal)
  # "left right" strings load in every tokenizers version; pairs only where a piece has a space.
  if any(" " in left + right for _, _, left, right in ranked):
    return [[left, right] for _, _, left, right in ranked]
  return [f"{left} {right}" for _, _, left, right in ranked]


def _added_token(i: int, content: str, *, special: bool) -> dict[str, Any]:
  return {"id": i, "content": content, "single_word": False, "lstrip": False,
          "rstrip": False, "normalized": not special, "special": special}


def _replace(pattern: dict[str, str], content: str) -> dict[str, Any]:
  return {"type": "Replace", "pattern": pattern, "content": content}


def _added(content: str) -> dict[str, Any]:
  return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
          "single_word": False, "special": True}


def _write_json(path: epath.Path, record: dict[str, Any]) -> None:
  path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
