"""ProsocialDialog in one import: the reader, the formats and the Canary examples.

Kept as the skeleton's entry point (prosocial_jax.evaluation.metrics imports
`parse_canary_output` from here). The pieces live in:

* readers/prosocial_dialog.py — both public formats (direct download and Hugging Face);
* formatting.py — context format, targets and their parsers;
* examples/prosocial_dialog.py — turns → task examples.
"""

from prosocial_jax.data.examples.prosocial_dialog import (canary_examples, gold_rot_examples,
                                                          prost_examples, rot_examples,
                                                          safety_examples)
from prosocial_jax.data.formatting import (BOT_MARK, ROT_SEPARATOR, USER_MARK,
                                           UTTERANCE_SEPARATOR, canary_target, format_history,
                                           parse_canary_output, parse_prost_output)
from prosocial_jax.data.readers.prosocial_dialog import (CORPUS, Dialogue, Turn, load_split,
                                                         parse_dialogues, read_dialogues,
                                                         read_file, read_files)

__all__ = [
    "BOT_MARK", "CORPUS", "Dialogue", "ROT_SEPARATOR", "Turn", "USER_MARK", "UTTERANCE_SEPARATOR",
    "canary_examples", "canary_target", "format_history", "gold_rot_examples", "load_split",
    "parse_canary_output", "parse_dialogues", "parse_prost_output", "prost_examples",
    "read_dialogues", "read_file", "read_files", "rot_examples", "safety_examples",
]
