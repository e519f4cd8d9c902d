"""A TFDS builder for ProsocialDialog: `tfds.builder("prosocial_dialog")` after importing this.

Online, its download step fetches the official Hugging Face files
(`allenai/prosocial-dialog`: train.json, valid.json, test.json). Offline, point
`download_config=tfds.download.DownloadConfig(manual_dir=DIR)` at a folder holding
either public format (the direct-download JSON, the Hugging Face JSON lines or
Parquet — files named by split, as in the data root); the manual folder wins
when it holds the files.

One example per turn, with its history rebuilt:

    dialogue_id, response_id   int64 (direct format: position in the file, turn index)
    history                    the earlier utterances and responses, oldest first
    context, response          the turn's utterance and the prosocial response to it
    rots, safety_annotations, safety_annotation_reasons   lists of text
    safety_label               ClassLabel over labels.SAFETY_LABELS
    source, etc                text ("" when absent)
    episode_done               bool

    import tensorflow_datasets as tfds
    import prosocial_jax.data.tfds_builder  # registers "prosocial_dialog"
    ds = tfds.load("prosocial_dialog", split="train")
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from prosocial_jax.data.data_root import SPLITS, find_split_files, marks_split
from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.data.prosocial_dialog import CORPUS


class ProsocialDialog(tfds.core.GeneratorBasedBuilder):
  """ProsocialDialog (Kim et al., EMNLP 2022): one example per turn."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Both public formats; history rebuilt per turn."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Optional: put ProsocialDialog's split files (train / valid / test, in the
  direct-download JSON or the Hugging Face JSON lines / Parquet format) in the
  manual folder to build offline; without them the Hugging Face files are downloaded.
  """
  # Split -> URL of the Hugging Face file, from the corpus's release (the one place).
  URLS = {split: next(r.url for r in CORPUS.release.files if marks_split(r.filename, split))
          for split in SPLITS}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS finds this itself through a lazy `importlib_resources` import, which the
    # pinned environment lacks (an optional extra of etils); the file is known anyway.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    text_list = tfds.features.Sequence(tfds.features.Text())
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "dialogue_id": tfds.features.Scalar(dtype=np.int64),
            "response_id": tfds.features.Scalar(dtype=np.int64),
            "history": text_list,
            "context": tfds.features.Text(),
            "response": tfds.features.Text(),
            "rots": text_list,
            "safety_label": tfds.features.ClassLabel(names=list(SAFETY_LABELS)),
            "safety_annotations": text_list,
            "safety_annotation_reasons": text_list,
            "source": tfds.features.Text(),
            "etc": tfds.features.Text(),
            "episode_done": tfds.features.Scalar(dtype=np.bool_),
        }),
        homepage="https://huggingface.co/datasets/allenai/prosocial-dialog",
        citation="Kim et al., ProsocialDialog: A Prosocial Backbone for Conversational Agents, EMNLP 2022.",
    )

  def _manual_files(self, dl_manager) -> dict[str, list[str]] | None:
    try:
      folder = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS asserts when no manual folder exists.
      return None
    if not os.path.isdir(folder) or not any(CORPUS.accepts(n) for n in os.listdir(folder)):
      return None
    # A manual folder with data must hold every split: a missing one is an error, not a download.
    return {split: find_split_files(folder, split, accept=CORPUS.accepts, multiple=True)
            for split in SPLITS}

  def _split_generators(self, dl_manager):
    files = self._manual_files(dl_manager)
    if files is None:
      paths = dl_manager.download(self.URLS)
      files = {split: [os.fspath(paths[split])] for split in SPLITS}
    return {split: self._generate_examples(files[split]) for split in SPLITS}

  def _generate_examples(self, paths):
    for dialogue in CORPUS.read_files(paths):
      history: list[str] = []
      for j, turn in enumerate(dialogue.turns):
        yield f"{dialogue.index}-{j}", {
            "dialogue_id": dialogue.index, "response_id": j, "history": list(history),
            "context": turn.text, "response": turn.response or "", "rots": list(turn.rots),
            "safety_label": turn.safety_label,
            "safety_annotations": list(turn.safety_annotations),
            "safety_annotation_reasons": list(turn.safety_annotation_reasons),
            "source": turn.source or "", "etc": turn.etc or "",
            "episode_done": bool(turn.episode_done),
        }
        history += [turn.text, turn.response or ""]
