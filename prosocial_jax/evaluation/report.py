"""The report of one evaluation: HTML and Markdown a person can look at, from MODEL_DIR's files.

`write_report(model_dir, eval_json)` reads only files `python -m prosocial_jax.eval` and
training leave in MODEL_DIR:

  eval/<name>-<split>-step<N>.json   the record (metrics per task, confusion matrices)
  eval/<split>/<task>-<N:06>.jsonl   SeqIO's prediction logs (input, target, prediction)
  metrics.jsonl                      the training log (loss; eval/.../perplexity)

and writes into MODEL_DIR/report/ (flat, so every page finds its images):

  <name>-<split>-step<N>.html, .md   this evaluation's report
  <name>-<split>-step<N>-*.png       its plots: curves, confusion matrix, per-label accuracy
  index.html, report.md              the same report (the latest evaluation), linking the
                                     earlier reports still in the folder

Each report shows, per task, the metrics beside the paper's numbers for the same row
(data/paper_results.py; the paper's are on the test split), the confusion matrix and
per-label accuracy as plots, and a few predictions per gold label beside the gold;
then the training loss and validation perplexity curves. Every text from data or
predictions is HTML-escaped. Works for local and gs:// MODEL_DIRs (etils.epath).
"""

from __future__ import annotations

import html
import io
import json
import logging
from typing import Any, Iterable, Mapping, Optional, Sequence

from etils import epath

from prosocial_jax.data import paper_results
from prosocial_jax.data.formatting import parse_canary_output
from prosocial_jax.data.labels import SAFETY_LABELS

logger = logging.getLogger("prosocial_jax")

EXAMPLES_PER_LABEL = 3
UNLABELLED = "(no label)"  # the group of gold targets without a safety label
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:4px 8px;vertical-align:top;text-align:left}th{background:#f3f3f3}"
         "img{max-width:100%;margin:0.5em 0}.num{text-align:right}")


# --- Reading -------------------------------------------------------------------------------

def read_jsonl(path: epath.Path) -> Iterable[dict[str, Any]]:
  """The JSON objects of a JSON-lines file; a line that is not one is skipped."""
  if not path.exists():
    return
  with path.open() as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue
      if isinstance(row, dict):
        yield row


def curves(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
  """{"loss": (steps, values)} of training, plus one (steps, values) per validation
  perplexity logged (`eval/perplexity`, `eval/<task>/perplexity`), keyed without `eval/`."""
  series: dict[str, tuple[list[int], list[float]]] = {}
  for row in rows:
    if "step" not in row:
      continue
    for key, value in row.items():
      if key == "loss" or (key.startswith("eval/") and key.endswith("/perplexity")):
        if isinstance(value, (int, float)):
          steps, values = series.setdefault(key.removeprefix("eval/"), ([], []))
          steps.append(int(row["step"]))
          values.append(float(value))
  return series


def per_label_accuracy(confusion: Mapping[str, Any]) -> dict[str, Optional[float]]:
  """% of each gold safety label's examples predicted as that label (None: no example)."""
  labels, matrix = confusion["labels"], confusion["matrix"]
  result = {}
  for i, label in enumerate(labels):
    if label in SAFETY_LABELS:
      total = sum(matrix[i])
      result[label] = 100.0 * matrix[i][i] / total if total else None
  return result


def examples_per_label(rows: Iterable[Mapping[str, Any]], k: int = EXAMPLES_PER_LABEL
                       ) -> dict[str, list[dict[str, str]]]:
  """The first `k` predictions of each gold safety label (UNLABELLED: targets without one),
  as {"input", "gold", "prediction"}."""
  groups: dict[str, list[dict[str, str]]] = {}
  for row in rows:
    gold = _text(row.get("target"))
    label = parse_canary_output(gold)[0] or UNLABELLED
    group = groups.setdefault(label, [])
    if len(group) < k:
      inputs = row.get("input")
      group.append({"input": _text(inputs.get("inputs_pretokenized", "")
                                   if isinstance(inputs, dict) else inputs),
                    "gold": gold, "prediction": _text(row.get("prediction"))})
  order = list(SAFETY_LABELS) + [UNLABELLED]
  return {label: groups[label] for label in order if label in groups}


def _text(value: Any) -> str:
  if value is None:
    return ""
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  return value if isinstance(value, str) else json.dumps(value)


# --- Plots ---------------------------------------------------------------------------------

def _figure(width: float, height: float):
  # No pyplot: no global state, no backend to select; PNG goes through Agg.
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  figure = Figure(figsize=(width, height), dpi=100)
  FigureCanvasAgg(figure)
  return figure


def _save(figure, path: epath.Path) -> None:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  path.write_bytes(buffer.getvalue())


def _short(label: str) -> str:
  return label.strip("_").replace("_", " ")


def plot_curves(series: Mapping[str, tuple[list[int], list[float]]], path: epath.Path) -> None:
  figure = _figure(11, 4)
  loss_axes, ppl_axes = figure.subplots(1, 2)
  if "loss" in series:
    loss_axes.plot(*series["loss"], marker=".")
  loss_axes.set(title="training loss", xlabel="step")
  for name, (steps, values) in series.items():
    if name != "loss":
      ppl_axes.plot(steps, values, marker="o", label=name)
  if len(series) > ("loss" in series):
    ppl_axes.legend(fontsize="small")
    ppl_axes.set_yscale("log")
  else:
    ppl_axes.text(0.5, 0.5, "no validation perplexity logged", ha="center",
                  transform=ppl_axes.transAxes)
  ppl_axes.set(title="validation perplexity", xlabel="step")
  figure.tight_layout()
  _save(figure, path)


def plot_confusion(confusion: Mapping[str, Any], title: str, path: epath.Path) -> None:
  import numpy as np
  matrix = np.array(confusion["matrix"])
  labels = [_short(x) for x in confusion["labels"]]
  figure = _figure(7, 6)
  axes = figure.subplots()
  image = axes.imshow(matrix, cmap="Blues")
  figure.colorbar(image, ax=axes)
  for (i, j), count in np.ndenumerate(matrix):
    axes.text(j, i, str(count), ha="center", va="center",
              color="white" if count > matrix.max() / 2 else "black")
  axes.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize="small")
  axes.set_yticks(range(len(labels)), labels, fontsize="small")
  axes.set(xlabel="predicted", ylabel="gold", title=title)
  figure.tight_layout()
  _save(figure, path)


def plot_per_label(accuracy: Mapping[str, Optional[float]], title: str,
                   path: epath.Path) -> None:
  figure = _figure(7, 4)
  axes = figure.subplots()
  labels = [_short(x) for x in accuracy]
  values = [v or 0.0 for v in accuracy.values()]
  bars = axes.bar(labels, values, color="#4c72b0")
  for bar, value in zip(bars, accuracy.values()):
    axes.text(bar.get_x() + bar.get_width() / 2, (value or 0) + 1,
              "n/a" if value is None else f"{value:.1f}", ha="center", fontsize="small")
  axes.set_ylim(0, 110)
  axes.set_ylabel("accuracy (%)")
  axes.set_title(title)
  axes.tick_params(axis="x", labelrotation=20, labelsize="small")
  figure.tight_layout()
  _save(figure, path)


# --- Writing -------------------------------------------------------------------------------

def _number(value: Any, digits: int = 2) -> str:
  return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _metric_rows(ours: Mapping[str, Any], paper: Sequence[tuple[str, Mapping[str, float]]]
                 ) -> tuple[list[str], list[list[str]]]:
  """(header, rows): each metric of ours (and of the paper's rows), ours then the paper's."""
  names = list(ours) + [m for _, values in paper for m in values if m not in ours]
  names = list(dict.fromkeys(names))
  header = ["metric", "this evaluation"] + [f"paper: {row}" for row, _ in paper]
  rows = [[name, _number(ours.get(name))] +
          [("–" if name not in values else f"{values[name]:g}") for _, values in paper]
          for name in names]
  return header, rows


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
  body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                 for row in rows)
  return f"<table><tr>{cells}</tr>{body}</table>"


def _md_cell(text: str) -> str:
  # Escaped too: Markdown viewers render raw HTML; `__label__` must not turn bold.
  text = html.escape(text, quote=False).replace("\n", " ")
  for char in "\\|_*`[]":
    text = text.replace(char, "\\" + char)
  return text


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  return (["| " + " | ".join(_md_cell(h) for h in header) + " |",
           "|" + "---|" * len(header)] +
          ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows] + [""])


def write_report(model_dir: str, eval_json: str) -> str:
  """Writes the report of the evaluation recorded in `eval_json` (see the module
  docstring) into MODEL_DIR/report/; returns the path of its index.html."""
  model_dir = epath.Path(model_dir)
  eval_json = epath.Path(eval_json)
  record = json.loads(eval_json.read_text())
  stem, split, step = eval_json.stem, record["split"], record["step"]
  folder = model_dir / "report"
  folder.mkdir(parents=True, exist_ok=True)
  name = record.get("mixture_or_task_name", stem)
  title = f"Evaluation of step {step}: {name} / {split}"
  intro = (f"MODEL_DIR {model_dir}, {record.get('num_examples', '?')} examples"
           f"{', decoded with ' + str(record['decode_weights']) + ' weights' if record.get('decode_weights') else ''}"
           f", greedy decoding. The paper's numbers are on its {paper_results.SPLIT} split"
           + ("." if split == paper_results.SPLIT else f"; this evaluation is on {split}, "
              "so they are a reference, not a like-for-like comparison."))
  page = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
  md = [f"# {_md_cell(title)}", "", _md_cell(intro), ""]

  for task, values in record.get("metrics", {}).items():
    paper = paper_results.RESULTS.get(paper_results.role_of_task(task) or "", [])
    header, rows = _metric_rows(values, paper)
    page += [f"<h2>{html.escape(task)}</h2>", _html_table(header, rows)]
    md += [f"## {_md_cell(task)}", "", *_md_table(header, rows)]
    if not paper:
      note = "The paper reports no numbers for this task."
      page.append(f"<p>{note}</p>")
      md += [note, ""]
    confusion = record.get("confusion_matrix", {}).get(task)
    if confusion:
      images = [(f"{stem}-{task}-confusion.png", "confusion matrix (rows gold, columns predicted)"),
                (f"{stem}-{task}-per-label.png", "accuracy per gold label")]
      plot_confusion(confusion, f"{task}: confusion matrix", folder / images[0][0])
      plot_per_label(per_label_accuracy(confusion), f"{task}: accuracy per gold label",
                     folder / images[1][0])
      for file, alt in images:
        page.append(f'<img src="{html.escape(file)}" alt="{html.escape(alt)}">')
        md += [f"![{alt}]({file})", ""]
    log = model_dir / "eval" / split / f"{task}-{step:06d}.jsonl"
    groups = examples_per_label(read_jsonl(log))
    if groups:
      header = ["gold label", "input", "gold", "prediction"]
      rows = [[label, e["input"], e["gold"], e["prediction"]]
              for label, examples in groups.items() for e in examples]
      note = f"The first {EXAMPLES_PER_LABEL} predictions of each gold label ({log.name}):"
      page += [f"<h3>Predictions</h3><p>{html.escape(note)}</p>", _html_table(header, rows)]
      md += ["### Predictions", "", _md_cell(note), "", *_md_table(header, rows)]

  series = curves(read_jsonl(model_dir / "metrics.jsonl"))
  page.append("<h2>Training</h2>")
  md += ["## Training", ""]
  if series:
    file = f"{stem}-curves.png"
    plot_curves(series, folder / file)
    points = ", ".join(f"{k}: {len(v[0])} point{'s' * (len(v[0]) != 1)}" for k, v in series.items())
    page += [f'<img src="{html.escape(file)}" alt="training curves">',
             f"<p>From metrics.jsonl ({html.escape(points)}).</p>"]
    md += [f"![training curves]({file})", "", f"From metrics.jsonl ({_md_cell(points)}).", ""]
  else:
    page.append("<p>No metrics.jsonl with a loss or validation perplexity.</p>")
    md += ["No metrics.jsonl with a loss or validation perplexity.", ""]

  own_md, own_html = "\n".join(md), _page(title, page)
  (folder / f"{stem}.md").write_text(own_md)
  (folder / f"{stem}.html").write_text(own_html)
  others = sorted(p.name for p in folder.glob("*.html") if p.name not in ("index.html",))
  links = [f'<li><a href="{html.escape(o)}">{html.escape(o[:-5])}</a></li>' for o in others]
  index_page = page + ["<h2>All reports</h2>", f"<ul>{''.join(links)}</ul>"]
  (folder / "report.md").write_text(own_md + "\n## All reports\n\n" + "\n".join(
      f"- [{_md_cell(o[:-5])}]({o[:-5]}.md)" for o in others) + "\n")
  index = folder / "index.html"
  index.write_text(_page(title, index_page))
  return str(index)


def _page(title: str, body: Sequence[str]) -> str:
  return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
          + "\n".join(body) + "\n</body></html>\n")
