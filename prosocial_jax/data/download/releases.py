"""Where each corpus's official release lives: URLs, published checksums, files to keep.

One table, read by the download command. A `sha256` is given where the release
(or ParlAI, which mirrors most casual corpora with checksums in its
`parlai/tasks/<corpus>/build.py`) publishes one; GitHub files are fetched at a
pinned commit, so their checksums are fixed too. Where none is published the
download prints the checksum it computed, to pin in your own records.

Corpora that need a data-use agreement or a request to the authors have no
URLs here, only instructions (`manual`).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Remote:
  """One file to fetch.

  name: the local file name (default: the URL's last path segment).
  keep: for an archive, a regex on member file names (basenames): the members
    kept, written flat into the corpus folder. None: the file is data itself.
  """
  url: str
  sha256: str | None = None
  name: str | None = None
  keep: str | None = None

  @property
  def filename(self) -> str:
    return self.name or self.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Release:
  corpus: str
  homepage: str
  license: str
  files: tuple[Remote, ...] = ()
  manual: str | None = None
  variants: dict[str, tuple[Remote, ...]] = dataclasses.field(default_factory=dict)


_HF = "https://huggingface.co/datasets/allenai/prosocial-dialog/resolve/main"
# GitHub files at pinned commits, so their checksums cannot change under us.
_TOPICAL = ("https://raw.githubusercontent.com/alexa/Topical-Chat/"
            "7c939229cbcf6f55f6977b341a5a2f2fe982d53f/conversations")
_TOXICHAT = ("https://raw.githubusercontent.com/abaheti95/ToxiChat/"
             "c1ffebd76596481b26aab35074816641b076f992/data/ToxiChat")

RELEASES: dict[str, Release] = {r.corpus: r for r in (
    Release(
        "prosocial_dialog", "https://huggingface.co/datasets/allenai/prosocial-dialog", "CC-BY-4.0",
        files=tuple(Remote(f"{_HF}/{split}.json") for split in ("train", "valid", "test")),
        variants={"direct": (Remote(
            "https://drive.google.com/u/1/uc?id=1d-987AjyfVdFnohBqQ3yaHt-b5mVezHa&export=download&confirm=t",
            "112e402e283949cbc36b67a86877c8aea098a7fe40fd3e180095e1e147958eba",
            name="prosocial_dialog_v1.tar.gz", keep=r"^(train|valid|test)\.json$"),)}),
    Release(
        "daily_dialog", "http://yanran.li/dailydialog", "CC BY-NC-SA 4.0",
        files=(Remote("http://parl.ai/downloads/dailydialog/dailydialog.tar.gz",
                      "c3adb09bd715b9fa5cd1ac41613b7de61eb5afbe477826a6146abefef573e6bb",
                      keep=r"^(train|valid|test)\.json$"),)),
    Release(
        "empathetic_dialogues", "https://github.com/facebookresearch/EmpatheticDialogues",
        "CC BY-NC 4.0",
        files=(Remote("http://parl.ai/downloads/empatheticdialogues/empatheticdialogues.tar.gz",
                      "240c492cb6199a315722f716bfcc14f13ea6605f1cec67349153b606be92f6f2",
                      keep=r"^(train|valid|test)\.csv$"),)),
    Release(
        "blended_skill_talk", "https://parl.ai/projects/bst/", "see ParlAI",
        files=(Remote("http://parl.ai/downloads/blended_skill_talk/blended_skill_talk.tar.gz",
                      "5fbed0068ee89e2d43b93c3ecb341e784617033efa5e8e911a219d4eda6134a6",
                      keep=r"^(train|valid|test)\.json$"),)),
    Release(
        "topical_chat", "https://github.com/alexa/Topical-Chat", "CDLA-Sharing-1.0",
        files=tuple(Remote(f"{_TOPICAL}/{name}.json", sha) for name, sha in (
            ("train", "39a079d8464ea5f44f0fd78dbc85fd4eed96303347cbf4f9301f823e3c0f437f"),
            ("valid_freq", "d14e8bde94fa5556d4aad8fd3fb666df674e4fef8b4193c8c3c06c72822a366b"),
            ("valid_rare", "b0f3c59584ea4ed61e368dc94feade6ba499a207a6437573b028d1f3ff918714"),
            ("test_freq", "3c65693d59e40a1fb58ead35dcfe85fbcc88ea93a4d74557df620996f72c8f08"),
            ("test_rare", "4f21a18be16e310840280678e7bb4646852573b239b69183ddf8898f40119567")))),
    Release(
        "persona_chat", "https://parl.ai/projects/personachat/", "see ParlAI",
        files=(Remote("http://parl.ai/downloads/personachat/personachat.tgz",
                      "507cf8641d333240654798870ea584d854ab5261071c5e3521c20d8fa41d5622",
                      keep=r"^(train|valid|test)_self_original\.txt$"),)),
    Release(
        "wizard_of_wikipedia", "https://parl.ai/projects/wizard_of_wikipedia/", "see ParlAI",
        files=(Remote("http://parl.ai/downloads/wizard_of_wikipedia/wizard_of_wikipedia.tgz",
                      "2a549627a83fea745efa2076a41d1c0078ad002ab2b54eae6a4e3d3d66ae24b7",
                      keep=r"^(train|valid_random_split|test_random_split)\.json$"),)),
    Release(
        "social_chem_101", "https://maxwellforbes.com/social-chemistry/", "CC BY-SA 4.0",
        files=(Remote("https://storage.googleapis.com/ai2-mosaic-public/projects/social-chemistry/"
                      "data/social-chem-101.zip", keep=r"^social-chem-101\.v1\.0\.tsv$"),)),
    Release(
        "moral_integrity_corpus", "https://github.com/SALT-NLP/mic", "see the data use agreement",
        manual=("The Moral Integrity Corpus is released after a data use agreement: fill in "
                "https://forms.gle/kp8bPgFoBHeNL4Q68, then download MIC.csv from "
                "https://www.dropbox.com/sh/m46z42nce8x0ttk/AABuSZiA6ESyrJNWmgTPrfuRa?dl=0 "
                "into {folder}/")),
    Release(
        "commonsense_norm_bank", "https://github.com/liweijiang/delphi", "see the authors",
        manual=("The Commonsense Norm Bank is shared by its authors on request (see "
                "https://github.com/liweijiang/delphi, contact delphi@allenai.org). Put its "
                "<split>.freeform.tsv / <split>.yesno.tsv files into {folder}/")),
    Release(
        "toxichat", "https://github.com/abaheti95/ToxiChat", "CC BY-SA 4.0",
        files=tuple(Remote(f"{_TOXICHAT}/{split}.jsonl", sha) for split, sha in (
            ("train", "806da95ba491888626a18c0324e9d6ec906450ba9fef92b54343ebf44e48682a"),
            ("dev", "591742cdf73b9fcae4f555cbccb5d49237b470172dd0fd07a4829cebc0060ace"),
            ("test", "13e67afb0806b1865d446ea3d730578d750d9be4127fdd872ef7cc903b52f9bb")))),
)}
