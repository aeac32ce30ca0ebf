"""The class taxonomy, written once: superclasses, their catalog subtypes, and the novel label.

Class order is fixed and sorted; GMM component k is class k (docs/method.md §3).
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("CEPH", "DSCT", "ECL", "M", "ROT", "RRAB", "RRCD", "SR")
NOVEL = "VAR"
"""Stars of unspecified variability type: never trained on, the positive class of novelty."""

SUBTYPES: dict[str, tuple[str, ...]] = {
    "CEPH": ("DCEP", "DCEPS", "CWA", "CWB", "RVA"),
    "DSCT": ("DSCT", "HADS"),
    "ECL": ("EW", "EB", "EA"),
    "M": ("M",),
    "ROT": ("ROT",),
    "RRAB": ("RRAB",),
    "RRCD": ("RRC", "RRD"),
    "SR": ("SR", "SRA", "SRB", "SRC", "SRD"),
}
"""Catalog subtype -> superclass, as in the original code (docs/method.md §1). Uncertain labels
such as "EW:" are not in any list and are dropped as unknown types."""

_SUPERCLASS_OF = {sub: cls for cls, subs in SUBTYPES.items() for sub in subs}


def superclass_of(variable_type: str | None) -> str | None:
    """Superclass of a catalog type, ``NOVEL`` for VAR, ``None`` for an unknown/uncertain type."""
    if variable_type is None:
        return None
    label = str(variable_type).strip().upper()
    if label == NOVEL:
        return NOVEL
    if label in CLASSES:
        return label
    return _SUPERCLASS_OF.get(label)

