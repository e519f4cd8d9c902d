"""SeqIO tasks and mixtures of prosocial_jax. Importing this package registers them.

They are plain SeqIO registrations: T5X itself can train on them with
`--gin.MIXTURE_OR_TASK_MODULE="'tasks'"`. Raw files are read from the data root
when a dataset is built, not at import: call `tasks.set_data_root(path)` (the
trainer does, with the gin macro DATA_ROOT) or rely on $PROSOCIAL_JAX_DATA /
~/prosocial_jax_data. The vocabulary is chosen the same late way
(`tasks.set_vocabulary`, gin, or $PROSOCIAL_JAX_VOCAB; see tasks/vocabularies.py).
Task and mixture names: docs/data.md.
"""

from tasks.data_sources import get_data_root, set_data_root, set_skip_bad_records
from tasks.registration import UnknownTaskError, get_mixture_or_task
from tasks.vocabularies import set_vocabulary
from tasks import prosocial_dialog  # prosocial_dialog_* tasks
from tasks import casual  # <corpus>_canary, <corpus>_prost
from tasks import social_norms  # stage-1 tasks
from tasks import toxichat  # toxichat_safety
from tasks import mixtures  # canary_mixture, prost_mixture, prost_response_mixture

__all__ = ["UnknownTaskError", "get_data_root", "get_mixture_or_task", "set_data_root",
           "set_skip_bad_records", "set_vocabulary"]
