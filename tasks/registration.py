"""How every task of the project is registered: one source kind, one preprocessing chain.

Each task reads examples {"context": ..., "target": ..., <extra string features>}
from an ExamplesSource and
  1. renames context → inputs, target → targets (extra features kept);
  2. tokenizes both with the tasks' vocabulary (keeping inputs_pretokenized /
     targets_pretokenized, the strings metrics compare against);
  3. cuts inputs from the LEFT to the feature length, so a dialogue's most recent
     turns survive (targets are cut from the right by SeqIO, the label first);
  4. appends EOS.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import seqio

from tasks import preprocessors, vocabularies
from tasks.sources import EpochTask, ExamplesFn, ExamplesSource

SPLITS = ("train", "validation", "test")


def output_features() -> dict[str, seqio.Feature]:
  vocab = vocabularies.TASK_VOCABULARY
  return {"inputs": seqio.Feature(vocab, add_eos=True, required=True),
          "targets": seqio.Feature(vocab, add_eos=True)}


def register_task(name: str, examples_fn: ExamplesFn, *, postprocess_fn: Callable,
                  metric_fns: Sequence[Callable], extra_features: Sequence[str] = (),
                  splits: Sequence[str] = SPLITS) -> seqio.Task:
  """Registers (or re-registers) a task over `examples_fn(split)`'s examples."""
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  key_map = {"inputs": "context", "targets": "target", **{f: f for f in extra_features}}
  return seqio.TaskRegistry.add(
      name,
      task_cls=EpochTask,
      source=ExamplesSource(examples_fn, ("context", "target", *extra_features), splits),
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
