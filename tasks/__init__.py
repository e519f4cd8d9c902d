"""SeqIO tasks and mixtures of prosocial_jax. Importing this package registers them.

Raw files are read from the data root when a dataset is built, not at import:
call `tasks.set_data_root(path)` (the trainer does, with the gin macro DATA_ROOT)
or rely on $PROSOCIAL_JAX_DATA / ~/prosocial_jax_data. The vocabulary is
`tasks.vocabularies.get_default_vocabulary()` ($PROSOCIAL_JAX_VOCAB overrides it;
set that before importing this package).
"""

from tasks.data_sources import get_data_root, set_data_root
from tasks import prosocial_dialog  # registers prosocial_dialog_* tasks

__all__ = ["get_data_root", "set_data_root"]
