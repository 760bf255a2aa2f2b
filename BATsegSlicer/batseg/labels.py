"""The label set of BATseg: values, names and fixed display colours of the tumour classes.

Label values follow the BATseg paper (K = 5): 0 background, 1 spinal meningioma,
2 ependymoma, 3 astrocytoma, 4 hemangioblastoma. Colours are fixed so that a reviewer sees
the same colour for a tumour type in every case, in the CLI's PNGs and in Slicer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TumourClass:
    """One tumour class: its label value, names and RGB colour in [0, 1]."""

    value: int
    name: str  # human-readable, used as the segment name in Slicer
    key: str  # short machine name, used in file names and JSON
    color: tuple[float, float, float]


TUMOUR_CLASSES: tuple[TumourClass, ...] = (
    TumourClass(1, "Spinal meningioma", "meningioma", (0.95, 0.62, 0.15)),
    TumourClass(2, "Ependymoma", "ependymoma", (0.20, 0.55, 0.95)),
    TumourClass(3, "Astrocytoma", "astrocytoma", (0.30, 0.80, 0.35)),
    TumourClass(4, "Hemangioblastoma", "hemangioblastoma", (0.90, 0.15, 0.30)),
)

NUM_CLASSES = 1 + len(TUMOUR_CLASSES)  # K = 5, background included
BACKGROUND = 0

# nnU-Net's dataset.json "labels" mapping (name -> value), background first.
NNUNET_LABELS: dict[str, int] = {"background": 0, **{c.key: c.value for c in TUMOUR_CLASSES}}


def class_by_value(value: int) -> TumourClass:
    """The tumour class with this label value (1-4)."""
    for c in TUMOUR_CLASSES:
        if c.value == value:
            return c
    raise KeyError(f"no tumour class has label value {value}")
