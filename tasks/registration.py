"""How every task of the project is registered: one source kind, one preprocessing chain.

A task is a corpus (prosocial_jax.data.CORPORA) and a function that builds its
examples {"context": ..., "target": ..., <extra string features>} from a split's
records (`CorpusExamples`). The examples come from an ExamplesSource and are
  1. renamed context → inputs, target → targets (extra features kept);
  2. tokenized with the tasks' vocabulary (keeping inputs_pretokenized /
     targets_pretokenized, the strings metrics compare against);
  3. cut from the LEFT to the feature length (inputs), so a dialogue's most recent
     turns survive (targets are cut from the right by SeqIO, the label first);
  4. ended with EOS.

`TASK_EXAMPLES` maps every registered task to its CorpusExamples.
`get_mixture_or_task(name)` is SeqIO's lookup, with a misspelled name refused
naming the nearest registered ones (`UnknownTaskError`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any, Callable, Sequence

import seqio

from prosocial_jax.data.data_root import SPLITS, Corpus
from prosocial_jax.data.reading import ReadResult
from prosocial_jax.user_errors import UserError
from tasks import data_sources, preprocessors, vocabularies
from tasks.sources import EpochTask, ExamplesSource

BuildExamples = Callable[[ReadResult], list[dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class CorpusExamples:
  """A task's examples of a split: `build` applied to the split's records of `corpus`.

  The files are read when called (a dataset being built), from the data root in
  effect then, so the data root can be chosen after `import tasks`.
  """
  corpus: Corpus
  build: BuildExamples

  def __call__(self, split: str) -> list[dict[str, Any]]:
    records = self.corpus.load_split(split, data_sources.get_data_root(),
                                     skip_bad_records=data_sources.skip_bad_records())
    return self.build(records)


TASK_EXAMPLES: dict[str, CorpusExamples] = {}


def output_features() -> dict[str, seqio.Feature]:
  vocab = vocabularies.TASK_VOCABULARY
  return {"inputs": seqio.Feature(vocab, add_eos=True, required=True),
          "targets": seqio.Feature(vocab, add_eos=True)}


def register_task(name: str, corpus: Corpus, build: BuildExamples, *, postprocess_fn: Callable,
                  metric_fns: Sequence[Callable], extra_features: Sequence[str] = ()) -> seqio.Task:
  """Registers (or re-registers) a task over `build`'s examples of `corpus`."""
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  examples = TASK_EXAMPLES[name] = CorpusExamples(corpus, build)
  key_map = {"inputs": "context", "targets": "target", **{f: f for f in extra_features}}
  return seqio.TaskRegistry.add(
      name,
      task_cls=EpochTask,
      source=ExamplesSource(examples, ("context", "target", *extra_features), SPLITS),
      output_features=output_features(),
      preprocessors=[
          functools.partial(seqio.preprocessors.rekey, key_map=key_map),
          seqio.preprocessors.tokenize,  # keeps inputs_pretokenized / targets_pretokenized
          preprocessors.left_truncate,
          seqio.preprocessors.append_eos_after_trim,
      ],
      postprocess_fn=postprocess_fn,
      metric_fns=list(metric_fns),
      shuffle_buffer_size=None,  # the source shuffles the whole split (sources.py)
  )


class UnknownTaskError(UserError, ValueError):
  """A task or mixture name that SeqIO has not registered; the message names the nearest."""


def get_mixture_or_task(name: str) -> seqio.Task | seqio.Mixture:
  """The registered task or mixture `name` (MIXTURE_OR_TASK_NAME, eval's --task).

  Raises UnknownTaskError naming the nearest registered names (or all of them), and
  reminding that a task of one's own must be imported to be registered.
  """
  known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
  if name not in known:
    near = difflib.get_close_matches(str(name), known, n=5, cutoff=0.5)
    raise UnknownTaskError(
        f"unknown task or mixture {name!r}. "
        + (f"Nearest: {', '.join(near)}." if near else f"Registered: {', '.join(known)}.")
        + " (A task of your own is registered when its module is imported: `import "
        "my_tasks` in the gin file.)")
  return seqio.get_mixture_or_task(name)
