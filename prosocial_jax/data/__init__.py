"""The data layer: raw corpora in their release formats → checked records.

One module per corpus, each declaring its `CORPUS` (data_root.Corpus): which files
the reader takes, how a file becomes records, where the release comes from and what
the synthetic fixture writes. `CORPORA` below lists them; the download / stats /
synthetic commands, the TFDS builder and the SeqIO tasks (the top-level `tasks`
package, which turns records into examples) all read it.

  prosocial_dialog.py      ProsocialDialog (both public formats)
  daily_dialog.py, empathetic_dialogues.py, blended_skill_talk.py, topical_chat.py,
  persona_chat.py, wizard_of_wikipedia.py        the casual corpora of the mixtures
  social_chem_101.py, moral_integrity_corpus.py, commonsense_norm_bank.py
                           the social-norm corpora of Canary's stage 1
  toxichat.py              ToxiChat (zero-shot evaluation)

The shared machinery:

  data_root.py     where corpora live (DATA_ROOT / $PROSOCIAL_JAX_DATA), the split names,
                   what a Corpus is, which files hold a split
  reading.py       the one guarded read loop, the file formats, the shared record types
  errors.py        errors that name the file, record and field; the skip-bad-records policy
  labels.py        the five safety labels
  paper_results.py the paper's test-set numbers (the model card and the eval report)
  formatting.py    the context and target formats, and their parsers
  download.py      `python -m prosocial_jax.data download <corpus>|all`
  synthetic.py     a synthetic data root in every release format (tests, benchmarks)
  tfds_builder.py  the `prosocial_dialog` TFDS builder
  train_vocab.py   the SentencePiece vocabulary
  __main__.py      `python -m prosocial_jax.data download|stats|synthetic|train-vocab`

docs/data.md is the user's guide.
"""

from prosocial_jax.data import (blended_skill_talk, commonsense_norm_bank, daily_dialog,
                                empathetic_dialogues, moral_integrity_corpus, persona_chat,
                                prosocial_dialog, social_chem_101, topical_chat, toxichat,
                                wizard_of_wikipedia)
from prosocial_jax.data.data_root import ROLES, Corpus

# Every corpus, by name, in the order commands list them.
CORPORA: dict[str, Corpus] = {c.name: c for c in (
    prosocial_dialog.CORPUS,
    daily_dialog.CORPUS,
    empathetic_dialogues.CORPUS,
    blended_skill_talk.CORPUS,
    topical_chat.CORPUS,
    persona_chat.CORPUS,
    wizard_of_wikipedia.CORPUS,
    social_chem_101.CORPUS,
    moral_integrity_corpus.CORPUS,
    commonsense_norm_bank.CORPUS,
    toxichat.CORPUS,
)}


def corpus(name: str) -> Corpus:
  """The corpus of that name (its folder under the data root, e.g. 'daily_dialog')."""
  if name not in CORPORA:
    raise ValueError(f"Unknown corpus {name!r}; expected one of {list(CORPORA)}.")
  return CORPORA[name]


def corpora_of(role: str) -> tuple[str, ...]:
  """The names of the corpora with that role (data_root.ROLES), in CORPORA's order."""
  if role not in ROLES:
    raise ValueError(f"Unknown role {role!r}; expected one of {ROLES}.")
  return tuple(name for name, c in CORPORA.items() if c.role == role)
