"""The label set of BATseg: values, names and fixed display colours of the tumour classes.

Label values follow the BATseg paper (K = 5): 0 background, 1 spinal meningioma,
2 ependymoma, 3 astrocytoma, 4 hemangioblastoma. Colours are fixed so that a reviewer sees
the same colour for a tumour type in every case, in the CLI's PNGs and in Slicer.

The standard codes of the classes (SNOMED CT, and this project's private type modifiers) are
here too, so that the DICOM SEG writer (`batseg.dicom_seg`) and the Slicer module's segments
(BATsegSlicerLib/terminology.py, whose docstring names the source of every code) use one table.
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


SCT = "SCT"  # SNOMED CT's coding scheme designator
PRIVATE_SCHEME = "99BATSEG"  # DICOM private coding scheme ("99" prefix): this project's own labels


@dataclass(frozen=True)
class Code:
    """One coded concept: value, coding scheme designator, meaning."""

    value: str
    meaning: str
    scheme: str = SCT


# Sources of the codes: the docstring of BATsegSlicerLib/terminology.py.
CATEGORY = Code("49755003", "Morphologically abnormal structure")
NEOPLASM = Code("108369006", "Neoplasm")
SPINAL_CORD = Code("2748008", "Spinal cord")
# Segment type per tumour class key.
TYPE_BY_CLASS_KEY: dict[str, Code] = {
    "meningioma": NEOPLASM,
    "ependymoma": Code("1186904005", "Ependymoma"),
    "astrocytoma": Code("1157043006", "Astrocytoma"),
    "hemangioblastoma": NEOPLASM,
}
# Type modifier per class whose type code is shared (Neoplasm).
MODIFIER_BY_CLASS_KEY: dict[str, Code] = {
    "meningioma": Code("MENINGIOMA", "Spinal meningioma", PRIVATE_SCHEME),
    "hemangioblastoma": Code("HEMANGIOBLASTOMA", "Hemangioblastoma", PRIVATE_SCHEME),
}


def display_rgb(tumour: TumourClass) -> tuple[int, int, int]:
    """The class colour in 0-255 (rounded), as the Slicer terminology file and DICOM SEG write it."""
    return tuple(int(round(255 * channel)) for channel in tumour.color)  # type: ignore[return-value]


def class_by_value(value: int) -> TumourClass:
    """The tumour class with this label value (1-4)."""
    for c in TUMOUR_CLASSES:
        if c.value == value:
            return c
    raise KeyError(f"no tumour class has label value {value}")
