"""A synthetic data root in every corpus's original release format.

For tests that need all corpora at once (mixtures, determinism, packing) and for
the input-pipeline benchmark, where the real releases may not be on disk. The
text is random English-like words — no real data — drawn with a fixed seed per
(corpus, split), so the same call writes the same bytes. Reader tests use small
hand-written files instead, whose expected examples are worked out by hand.

    python -m prosocial_jax.data synthetic DIR --dialogues 200
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from typing import Callable

import tensorflow as tf

from prosocial_jax.data.labels import CASUAL, NEEDS_INTERVENTION, SAFETY_LABELS

_WORDS = (
    "i you he she we they it this that my your friend family mother father brother sister "
    "work school home party money car dog cat phone game movie book food dinner lunch "
    "today yesterday tomorrow always never really very just still maybe because but and or "
    "if when so then want need think feel know like love hate help tell ask give take make "
    "go come see look find keep leave let call try play read watch eat drink buy pay sell "
    "good bad right wrong nice kind rude fair unfair honest happy sad angry sorry okay fine "
    "should could would will can might must have has had is are was were be been do does did "
    "people someone everyone nobody neighbor boss teacher kid kids wife husband partner "
    "promise secret lie truth joke gift time week year night morning weekend job office "
    "house room street store city trip vacation weather music song team class test plan"
).split()
_LEVELS = (CASUAL,) + SAFETY_LABELS[1:4]  # by the number of "needs caution" votes
SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}


def _sentence(rng: random.Random, low: int, high: int) -> str:
  words = [rng.choice(_WORDS) for _ in range(rng.randint(low, high))]
  return " ".join(words).capitalize() + rng.choice(".?!")


def _rot(rng: random.Random) -> str:
  return rng.choice(("It's wrong to ", "You should ", "It's kind to ", "You shouldn't ")) + \
      " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))) + "."


def _label_and_votes(rng: random.Random) -> tuple[str, list[str]]:
  if rng.random() < 0.1:
    votes = ["needs intervention"] + rng.choices(["casual", "needs caution"], k=2)
  else:
    votes = rng.choices(["casual", "needs caution"], k=3)
  label = NEEDS_INTERVENTION if "needs intervention" in votes else _LEVELS[votes.count("needs caution")]
  rng.shuffle(votes)
  return label, votes


def _dialogues(rng: random.Random, n: int, low: int, high: int, words=(8, 24)) -> list[list[str]]:
  return [[_sentence(rng, *words) for _ in range(rng.randint(low, high))] for _ in range(n)]


def _write(path: str, text: str) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)


# ---------------------------------------------------------------- one writer per corpus

def _prosocial_dialog(folder: str, split: str, rng: random.Random, n: int, fmt: str) -> None:
  dialogues = []
  for d in range(n):
    turns = []
    for k in range(rng.randint(2, 6)):
      label, votes = _label_and_votes(rng)
      turns.append({
          "text": _sentence(rng, 8, 30), "labels": [_sentence(rng, 15, 45)],
          "rots": [] if label == CASUAL else [_rot(rng) for _ in range(rng.randint(1, 3))],
          "safety_label": label, "safety_annotations": votes,
          "safety_annotation_reasons": [_sentence(rng, 5, 12) for _ in votes],
          "source": rng.choice(["socialchemistry", "sbic", "ethics_amt", "ethics_reddit"]),
          "etc": "", "episode_done": False})
    turns[-1]["episode_done"] = True
    dialogues.append(turns)
  name = SPLIT_FILES[split] + ".json"
  if fmt == "direct":
    _write(os.path.join(folder, name), json.dumps(dialogues))
    return
  lines = []
  for d, turns in enumerate(dialogues):
    for r, t in enumerate(turns):
      row = {"context": t["text"], "response": t["labels"][0]}
      row.update({k: t[k] for k in ("rots", "safety_label", "safety_annotations",
                                     "safety_annotation_reasons", "source", "etc")})
      row.update(dialogue_id=d, response_id=r, episode_done=t["episode_done"])
      lines.append(json.dumps(row))
  _write(os.path.join(folder, name), "\n".join(lines) + "\n")


def _daily_dialog(folder, split, rng, n, fmt):
  lines = [json.dumps({"fold": split, "topic": "ordinary_life",
                       "dialogue": [{"text": u, "act": "inform", "emotion": "no_emotion"} for u in d]})
           for d in _dialogues(rng, n, 2, 10, (5, 16))]
  _write(os.path.join(folder, SPLIT_FILES[split] + ".json"), "\n".join(lines) + "\n")


def _empathetic_dialogues(folder, split, rng, n, fmt):
  lines = ["conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags"]
  for c, d in enumerate(_dialogues(rng, n, 2, 6)):
    prompt = _sentence(rng, 8, 16).replace(",", "_comma_")
    for k, u in enumerate(d):
      lines.append(f"hit:{c}_conv:{2 * c},{k + 1},sentimental,{prompt},{k % 2},"
                   f"{u.replace(',', '_comma_')},5|5|5_2|2|5,")
  _write(os.path.join(folder, SPLIT_FILES[split] + ".csv"), "\n".join(lines) + "\n")


def _blended_skill_talk(folder, split, rng, n, fmt):
  episodes = [{"personas": [[_sentence(rng, 4, 8)] * 2] * 2, "context_dataset": "convai2",
               "free_turker_utterance": _sentence(rng, 6, 14),
               "guided_turker_utterance": _sentence(rng, 6, 14), "additional_context": "",
               "dialog": [[k % 2, u] for k, u in enumerate(d)]}
              for d in _dialogues(rng, n, 4, 12)]
  _write(os.path.join(folder, SPLIT_FILES[split] + ".json"), json.dumps(episodes))


def _topical_chat(folder, split, rng, n, fmt):
  names = {"train": ["train"], "validation": ["valid_freq", "valid_rare"],
           "test": ["test_freq", "test_rare"]}[split]
  for part, name in enumerate(names):
    data = {f"t_{split}_{part}_{c}": {
        "article_url": "", "config": "A", "conversation_rating": {},
        "content": [{"message": u, "agent": f"agent_{k % 2 + 1}", "sentiment": "Neutral",
                     "knowledge_source": ["FS1"], "turn_rating": "Good"} for k, u in enumerate(d)]}
        for c, d in enumerate(_dialogues(rng, max(n // len(names), 1), 10, 22))}
    _write(os.path.join(folder, f"{name}.json"), json.dumps(data))


def _persona_chat(folder, split, rng, n, fmt):
  lines = []
  for d in _dialogues(rng, n, 4, 14, (5, 14)):
    number = 0
    for persona in range(4):
      number += 1
      lines.append(f"{number} your persona: {_sentence(rng, 4, 8).lower()}")
    for k in range(0, len(d) - 1, 2):
      number += 1
      lines.append(f"{number} {d[k].lower()}\t{d[k + 1].lower()}\t\tcand a|cand b")
  _write(os.path.join(folder, f"{SPLIT_FILES[split]}_self_original.txt"), "\n".join(lines) + "\n")


def _wizard_of_wikipedia(folder, split, rng, n, fmt):
  data = [{"chosen_topic": "Topic", "persona": "i like things.", "wizard_eval": 5,
           "chosen_topic_passage": [], "dialog": [
               {"speaker": f"{k % 2}_{'Wizard' if k % 2 == 0 else 'Apprentice'}", "text": u,
                "retrieved_passages": [], "retrieved_topics": []} for k, u in enumerate(d)]}
          for d in _dialogues(rng, n, 4, 10, (8, 28))]
  name = "train.json" if split == "train" else f"{SPLIT_FILES[split]}_random_split.json"
  _write(os.path.join(folder, name), json.dumps(data))


def _toxichat(folder, split, rng, n, fmt):
  def turn(i):
    return {"turn_id": i, "text": " " + _sentence(rng, 6, 30) + " ",
            "offense_label": rng.choice(["Safe", "Safe", "Offensive"]), "offense_targets": []}
  lines = [json.dumps({"reddit_thread": [turn(i + 1) for i in range(rng.randint(1, 3))],
                       "final_dgpt_response": dict(turn(4), chatbot_model="dgpt"),
                       "final_gpt3_response": dict(turn(4), chatbot_model="gpt3")})
           for _ in range(n)]
  name = {"train": "train", "validation": "dev", "test": "test"}[split] + ".jsonl"
  _write(os.path.join(folder, name), "\n".join(lines) + "\n")


def _tsv(rows: list[list[str]], delimiter: str) -> str:
  out = io.StringIO()
  csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
  return out.getvalue()


def _social_chem_101(folder, n, rng):
  rows = [["area", "m", "split", "rot-agree", "rot-bad", "situation", "rot", "rot-id"]]
  for split in ("train", "dev", "test"):
    for s in range(n):
      situation = _sentence(rng, 5, 15)
      for r in range(rng.randint(1, 3)):
        rows.append(["amitheasshole", "1", split, "4", "0", situation, _rot(rng), f"{split}-{s}-{r}"])
  _write(os.path.join(folder, "social-chem-101.v1.0.tsv"), _tsv(rows, "\t"))


def _moral_integrity_corpus(folder, n, rng):
  rows = [["Q", "A", "rot", "split", "id"]]
  for split in ("train", "dev", "test"):
    rows += [[_sentence(rng, 5, 15), _sentence(rng, 5, 25), _rot(rng), split, f"{split}-{k}"]
             for k in range(n)]
  _write(os.path.join(folder, "MIC.csv"), _tsv(rows, ","))


def _commonsense_norm_bank(folder, n, rng):
  for split in ("train", "validation", "test"):
    rows = [["input_sequence", "class_label", "text_label", "input_type", "format", "source"]]
    rows += [[_sentence(rng, 4, 12), "-1", "it's " + rng.choice(_WORDS), "negative_rot",
              "freeform", "synthetic"] for _ in range(n)]
    _write(os.path.join(folder, f"{split}.freeform.tsv"), _tsv(rows, "\t"))


_PER_SPLIT: dict[str, Callable] = {
    "prosocial_dialog": _prosocial_dialog,
    "daily_dialog": _daily_dialog,
    "empathetic_dialogues": _empathetic_dialogues,
    "blended_skill_talk": _blended_skill_talk,
    "topical_chat": _topical_chat,
    "persona_chat": _persona_chat,
    "wizard_of_wikipedia": _wizard_of_wikipedia,
    "toxichat": _toxichat,
}
_ONE_FILE: dict[str, Callable] = {
    "social_chem_101": _social_chem_101,
    "moral_integrity_corpus": _moral_integrity_corpus,
    "commonsense_norm_bank": _commonsense_norm_bank,
}
CORPORA = tuple(_PER_SPLIT) + tuple(_ONE_FILE)


def write_data_root(root: str, *, dialogues: int = 20, corpora=CORPORA,
                    splits=("train", "validation", "test"), prosocial_format: str = "hf") -> str:
  """Writes `dialogues` dialogues (rows, threads) per split of each corpus under `root`.

  `prosocial_format` is "hf" (Hugging Face JSON lines) or "direct" (direct download).
  Returns `root`.
  """
  for corpus in corpora:
    folder = os.path.join(root, corpus)
    tf.io.gfile.makedirs(folder)
    if corpus in _ONE_FILE:
      _ONE_FILE[corpus](folder, dialogues, random.Random(f"{corpus}"))
      continue
    for split in splits:
      _PER_SPLIT[corpus](folder, split, random.Random(f"{corpus}/{split}"), dialogues,
                         prosocial_format)
  return root
