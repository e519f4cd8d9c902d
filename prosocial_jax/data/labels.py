"""The five ProsocialDialog safety labels — defined once, imported everywhere.

Ordered from least to most severe. A turn is `__casual__` only when all three
annotators said casual; one "needs intervention" vote makes it
`__needs_intervention__`; otherwise the number of "needs caution" votes (1, 2, 3)
gives possibly / probably / needs caution.
"""

from __future__ import annotations

CASUAL = "__casual__"
POSSIBLY_NEEDS_CAUTION = "__possibly_needs_caution__"
PROBABLY_NEEDS_CAUTION = "__probably_needs_caution__"
NEEDS_CAUTION = "__needs_caution__"
NEEDS_INTERVENTION = "__needs_intervention__"

SAFETY_LABELS: tuple[str, ...] = (
    CASUAL,
    POSSIBLY_NEEDS_CAUTION,
    PROBABLY_NEEDS_CAUTION,
    NEEDS_CAUTION,
    NEEDS_INTERVENTION,
)
