"""README.md of an exported model: a Hugging Face model card, written from the run's records.

What the model is comes from the task or mixture it trained on (meta["input"]):
Canary (safety label + RoTs), a safety classifier, a rule-of-thumb model (Canary's
first, social-norm stage) or Prost (RoTs then response, response only, or response
from gold RoTs). The card names the base checkpoint, the mixture and its rates, the
step, the model's shape, and the latest evaluation metrics recorded at or before the
exported step (`metrics.jsonl`'s `eval/...` keys and the `eval/*.json` evaluation records):
later ones describe other weights. It closes with the paper's caveats, the data's
licences and the citation. Nothing here fails an export: what cannot be read (tasks
not importable, no metrics) is left out or said so in the card.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
from typing import Any, Optional

from etils import epath

from prosocial_jax.data import CORPORA
from prosocial_jax.data import paper_results
from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.models.registry import config_to_dict

logger = logging.getLogger(__name__)

HF_CLASSES = {"t5": "T5ForConditionalGeneration", "prost": "BlenderbotForConditionalGeneration"}
RUNTIME_FIELDS = ("dtype", "matmul", "remat_policy", "scan_layers")  # how it ran, not what it is

CITATION = """@inproceedings{kim2022prosocialdialog,
  title     = {ProsocialDialog: A Prosocial Backbone for Conversational Agents},
  author    = {Kim, Hyunwoo and Yu, Youngjae and Jiang, Liwei and Lu, Ximing and
               Khashabi, Daniel and Kim, Gunhee and Choi, Yejin and Sap, Maarten},
  booktitle = {Proceedings of the 2022 Conference on Empirical Methods in Natural
               Language Processing (EMNLP)},
  pages     = {4005--4029},
  year      = {2022},
  publisher = {Association for Computational Linguistics},
  doi       = {10.18653/v1/2022.emnlp-main.267}
}"""

# role -> (title, what it does, tags); the paper's results: data/paper_results.py
ROLES = {
    "canary": ("Canary (dialogue safety module)",
               "Given a dialogue context, it generates a safety label ({labels}) followed "
               "by the rules-of-thumb (RoTs) that apply, joined by commas, e.g. "
               "`__needs_caution__ It's wrong to pull a fire alarm when there's no fire.`; "
               "for a casual context, the label alone.",
               ["dialogue-safety", "rules-of-thumb", "canary"]),
    "safety": ("Dialogue safety classifier",
               "Given a dialogue context, it generates one safety label ({labels}).",
               ["dialogue-safety"]),
    "norms": ("Rule-of-thumb model (Canary's social-norm stage)",
              "Given a situation or dialogue, it generates a rule-of-thumb (or a moral "
              "judgment): the stage Canary is first trained on before its own mixture.",
              ["rules-of-thumb", "social-norms"]),
    "prost_rot_response": ("Prost (prosocial dialogue agent, RoT then response)",
                           "Given a dialogue context, it generates the rules-of-thumb that "
                           "apply, then a prosocial response grounded in them: "
                           "`RoT: <RoTs> Response: <response>` (the bare response when no "
                           "RoT applies), i.e. p(u, r | c).",
                           ["dialogue", "prost"]),
    "prost_response": ("Prost (prosocial dialogue agent, response only)",
                       "Given a dialogue context, it generates a prosocial response, "
                       "i.e. p(u | c).", ["dialogue", "prost"]),
    "prost_gold_rot": ("Prost (response from given RoTs)",
                       "Given a dialogue context followed by ` RoT: <RoTs>`, it generates "
                       "a prosocial response grounded in those RoTs.", ["dialogue", "prost"]),
    "other": ("Dialogue model", "A sequence-to-sequence dialogue model.", ["dialogue"]),
}
PROST_CAVEAT = ("Prost is a research dialogue agent, not a safe or reliable assistant: its "
                "replies can still be inappropriate, wrong or preachy, and it must not be "
                "relied on for medical, legal, crisis or other high-stakes advice.")
SAFETY_CAVEAT = ("{model} is a safety aid, not a filter of record: its labels and RoTs are a "
                 "model's guesses, can be wrong or missing, and should inform, not replace, "
                 "human judgment or a moderation policy.")


def write_model_card(stored, output_dir: str) -> str:
  """Writes README.md for `stored` (a StoredCheckpoint) into `output_dir`; returns its path."""
  path = epath.Path(output_dir) / "README.md"
  path.write_text(model_card(stored))
  return str(path)


def role_of(name: str, family: str) -> str:
  """What a run on task or mixture `name` trains (a ROLES key)."""
  role = paper_results.role_of_task(name)
  if role:
    return role
  return "prost_rot_response" if family == "prost" else "other"


def model_card(stored) -> str:
  family = config_to_dict(stored.config)["family"]
  run = stored.trained_on
  name = run.get("mixture_or_task_name") or "an unrecorded task"
  # A checkpoint converted and never trained here (convert.py's step 0) is its source model,
  # not a Canary or Prost: the family alone says nothing of what it was trained for.
  role = role_of(name, family) if run else "other"
  title, does, tags = ROLES[role]
  paper = paper_results.summary(role)
  rates = mixture_rates(name)
  corpora = _corpora([task for task, _ in rates] if rates else [name])
  lines = ["---", *_license_front_matter(corpora), "language:", "- en",
           "library_name: transformers",
           "pipeline_tag: text2text-generation", "tags:"]
  lines += [f"- {tag}" for tag in ("prosocial-dialog", *tags,
                                   {"prost": "blenderbot"}.get(family, family), "prosocial_jax")]
  if "prosocial_dialog" in corpora:
    lines += ["datasets:", "- allenai/prosocial-dialog"]
  lines += ["---", "", f"# {title}", "",
            f"{does.format(labels=', '.join(f'`{x}`' for x in SAFETY_LABELS))} "
            "One of the models of ProsocialDialog (Kim et al., EMNLP 2022), trained with "
            f"prosocial_jax and exported at step {stored.step} as "
            f"`{HF_CLASSES.get(family, family)}`.", ""]
  for section in (_usage(run), _training(stored, name, run, rates),
                  _architecture(stored, family), _evaluation(stored, paper), _uses(role),
                  _license(corpora)):
    lines += section
  return "\n".join(lines + ["## Citation", "", "```bibtex", CITATION, "```", ""])


def _training(stored, name: str, run: dict[str, Any], rates) -> list[str]:
  lines = ["## Training", "", "| | |", "|---|---|",
           f"| base checkpoint | {base_checkpoint(stored)} |",
           f"| task or mixture | `{name}` |", f"| steps | {stored.step} |"]
  lines += [f"| {key.replace('_', ' ')} | `{json.dumps(run[key])}` |"
            for key in ("batch_size", "task_feature_lengths", "pack", "seed") if key in run]
  stop = (stored.meta.get("loop") or {}).get("stop_reason")
  lines += [f"| stopped by | {stop} |"] if stop else []
  code = stored.meta.get("code")
  if code:
    dirty = " (uncommitted changes)" if code.get("git_dirty") else ""
    lines.append(f"| code | prosocial_jax {code.get('version', '?')}, commit "
                 f"`{str(code.get('git_commit', '?'))[:12]}`{dirty} |")
  lines.append("")
  if rates:
    total = sum(rate for _, rate in rates)
    lines += ["Mixture rates (SeqIO samples each task with probability rate / sum):", "",
              "| task | rate | share |", "|---|---|---|"]
    lines += [f"| `{task}` | {_number(rate)} | {100 * rate / total:.1f}% |" for task, rate in rates]
    lines.append("")
  sizes = {task: info["examples"] for task, info in (run.get("data") or {}).items()
           if isinstance(info, dict) and info.get("examples") is not None}
  if sizes:
    lines += ["Training examples read: " + ", ".join(
        f"`{task}` {count:,}" for task, count in sizes.items()) + ".", ""]
  return lines


def base_checkpoint(stored) -> str:
  """Where the weights started: a converted checkpoint, INITIAL_CHECKPOINT_PATH, or scratch."""
  imported = stored.meta.get("imported_from")
  if imported:
    return f"converted from `{imported.get('source')}` ({imported.get('format')})"
  initial = stored.meta.get("initial_checkpoint")
  if isinstance(initial, dict):
    initial = initial.get("path") or initial.get("source")
  if not initial:  # the operative gin config the trainer writes into MODEL_DIR
    gin_file = epath.Path(stored.model_dir) / "config.gin"
    text = gin_file.read_text() if gin_file.exists() else ""
    m = re.search(r"^(?:INITIAL_CHECKPOINT_PATH|train\.initial_checkpoint_path)\s*=\s*"
                  r"['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    initial = m and m.group(1)
  return f"`{initial}` (INITIAL_CHECKPOINT_PATH)" if initial else "none: trained from scratch"


def mixture_rates(name: str) -> Optional[list[tuple[str, float]]]:
  """[(task, rate)] of a registered SeqIO mixture; None for a task, or when the tasks
  cannot be imported here (the card then names the mixture only)."""
  try:
    import seqio  # pylint: disable=import-outside-toplevel
    importlib.import_module("tasks")  # registers the project's tasks and mixtures
    provider = seqio.get_mixture_or_task(name)
  except Exception as error:  # pylint: disable=broad-except  (a card must not fail an export)
    logger.warning("Model card: no rates for %s (%s: %s).", name, type(error).__name__, error)
    return None
  if not isinstance(provider, seqio.Mixture):
    return None
  rates = [(task.name, float(provider.get_rate(task))) for task in provider.tasks]
  return sorted(rates, key=lambda pair: (-pair[1], pair[0]))  # largest share first


def latest_eval_metrics(model_dir: str, step: int) -> dict[str, tuple[int, Any]]:
  """{metric: (step, value)}: each evaluation metric's last value at or before `step`."""
  found: dict[str, tuple[int, Any]] = {}

  def take(path: epath.Path, prefix: str, keep) -> None:
    if not path.exists():
      return
    for number, line in enumerate(path.read_text().splitlines(), 1):
      try:
        record = json.loads(line) if line.strip() else {}
        at = int(record.get("step", -1))
      except (ValueError, TypeError, AttributeError):
        logger.warning("Model card: %s line %d is not a metrics record; skipped.", path, number)
        continue
      if not 0 <= at <= step:  # later evaluations describe other weights
        continue
      for key, value in record.items():
        if key != "step" and keep(key) and at >= found.get(prefix + key, (-1, None))[0]:
          found[prefix + key] = (at, value)

  # The confusion matrix's cells (evaluation.metrics' `safety_confusion/<gold>/<predicted>`)
  # are 36 counts per task, not results to list.
  result = lambda key: "safety_confusion/" not in key
  directory = epath.Path(model_dir)
  take(directory / "metrics.jsonl", "", lambda key: key.startswith("eval/") and result(key))
  # The evaluation records (`python -m prosocial_jax.eval` and the training job's SeqIO
  # evaluations) under the keys the training log uses, so one evaluation is one row.
  # A record of a subset (`--max_examples`) is not the model's result: left out.
  for path in sorted((directory / "eval").glob("*.json")) if (directory / "eval").exists() else ():
    try:
      record = json.loads(path.read_text())
      at, split = int(record["step"]), record.get("split", "validation")
      per_task = record["metrics"].items()
    except (ValueError, TypeError, KeyError, AttributeError):
      logger.warning("Model card: %s is not an evaluation record; skipped.", path)
      continue
    if record.get("max_examples") or not 0 <= at <= step:
      continue
    where = "eval/" if split == "validation" else f"eval/{split}/"
    for task, values in per_task:
      for key, value in values.items():
        if at >= found.get(f"{where}{task}/{key}", (-1, None))[0]:
          found[f"{where}{task}/{key}"] = (at, value)
  return found


def _usage(run: dict[str, Any]) -> list[str]:
  length = (run.get("task_feature_lengths") or {}).get("inputs")
  example = "User: I took credit for my coworker's idea in the team meeting."
  return [
      "## How to use", "",
      "The input is the dialogue so far, oldest utterance first, each after a speaker mark "
      "(`User:` / `Bot:`, counted back from the end so the last utterance is `User:`), "
      "joined by single spaces" + (f"; trained on inputs of up to {length} tokens, "
                                   "cut from the left (the tokenizer truncates from the "
                                   "left too)." if length else "."), "",
      "```python", "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer", "",
      'tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO")',
      'model = AutoModelForSeq2SeqLM.from_pretrained("PATH_OR_REPO")',
      f'inputs = tokenizer(["{example}"], return_tensors="pt")',
      "output = model.generate(**inputs, max_new_tokens=64)",
      "print(tokenizer.decode(output[0], skip_special_tokens=True))", "```", "",
      "`spiece.model` (when present) is the SentencePiece model the run trained with, for "
      "SeqIO / T5X: `seqio.SentencePieceVocabulary(path, extra_ids=...)`.", ""]


def _architecture(stored, family: str) -> list[str]:
  shapes = stored.meta.get("param_shapes") or {}
  count = sum(math.prod(shape) for shape in shapes.values())
  fields = {k: v for k, v in stored.config.to_dict().items() if k not in RUNTIME_FIELDS}
  lines = ["## Model", "", f"{family} encoder-decoder" +
           (f", {count:,} parameters" if count else "") + ".", "", "| field | value |",
           "|---|---|"]
  return lines + [f"| {k} | `{json.dumps(v)}` |" for k, v in fields.items()] + [""]


def _evaluation(stored, paper: Optional[str]) -> list[str]:
  metrics = latest_eval_metrics(stored.model_dir, stored.step)
  lines = ["## Evaluation", ""]
  if metrics:
    lines += [f"The latest values recorded at or before step {stored.step}: `metrics.jsonl` "
              "(evaluations during training) and `eval/*.json` (SeqIO evaluations of a "
              "checkpoint), on the validation split unless a metric names another.", "",
              "| metric | value | at step |",
              "|---|---|---|"]
    lines += [f"| {key.removeprefix('eval/')} | {_number(value)} | {at} |"
              for key, (at, value) in sorted(metrics.items())]
  else:
    lines.append(f"No evaluation metrics were recorded at or before step {stored.step}.")
  if paper:
    lines += ["", f"For reference, the paper reports on the ProsocialDialog test set: {paper}."]
  return lines + [""]


def _uses(role: str) -> list[str]:
  caveat = PROST_CAVEAT if role.startswith("prost") else SAFETY_CAVEAT.format(
      model="Canary" if role == "canary" else "This model")
  return ["## Intended use and limitations", "",
          "For research on dialogue safety and prosocial dialogue agents, in English. "
          + caveat, "",
          "- Rules-of-thumb are not universal: they are the judgments of the crowdworkers "
          "who annotated ProsocialDialog, and norms differ across cultures, communities "
          "and situations.",
          "- The training data contains unethical, biased and toxic utterances by design "
          "(they are what the models learn to respond to); the model can reproduce them.",
          "- Safety labels are coarse and the contexts are short English dialogues; behaviour "
          "out of that domain is untested.", ""]


def _license(corpora: list[str]) -> list[str]:
  lines = ["## License", "", "The code that trained and exported this model (prosocial_jax) is "
           "Apache-2.0. The weights derive from the training data, whose terms apply too:", ""]
  for corpus in corpora:
    release = getattr(CORPORA.get(corpus), "release", None)
    lines.append(f"- {corpus}: {release.license} ({release.homepage})" if release
                 else f"- {corpus}: see its release")
  return lines + ([] if corpora else ["- see the training data's releases"]) + [""]


def _license_front_matter(corpora: list[str]) -> list[str]:
  """apache-2.0 (the code's) only when every training corpus is under an open licence
  without a non-commercial clause (CC BY / BY-SA, CDLA); else `other`, the card's
  License section listing each corpus's terms — the paper's mixtures hold DailyDialog
  (CC BY-NC-SA) and EmpatheticDialogues (CC BY-NC), so the hub must not call them Apache."""
  terms = [str(getattr(getattr(CORPORA.get(c), "release", None), "license", "")) for c in corpora]
  open_terms = [re.fullmatch(r"(CC[- ]BY([- ]SA)?[- ]\d\.\d|CDLA-\S+)", t.strip(), re.IGNORECASE)
                for t in terms]
  if corpora and all(open_terms):
    return ["license: apache-2.0"]
  return ["license: other", "license_name: training-data-terms"]


def _corpora(task_names: list[str]) -> list[str]:
  """The corpora behind the tasks (a task's name starts with its corpus's)."""
  names = sorted(CORPORA, key=len, reverse=True)
  found = []
  for task in task_names:
    corpus = next((n for n in names if task.startswith(n)), None)
    if corpus and corpus not in found:
      found.append(corpus)
  # The paper's mixtures, when `tasks` could not be imported to list their tasks.
  if not found and task_names and re.fullmatch(r"(canary|prost|prost_response)_mixture",
                                               task_names[0]):
    found = ["prosocial_dialog"]
  return found


def _number(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
  return str(value)

