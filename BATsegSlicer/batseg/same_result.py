"""Whether a faster inference path gives the same result as the reference path (issue 19's bar).

An acceleration (another engine, other tiles, the cascade crop) may be the default only if its
labels are those of the unaccelerated path: PyTorch in fp32 with nnU-Net's tiling (the training
patch, step 0.5) over the whole volume, same postprocessing. "The same" is either identical
label maps, or a Dice of at least `MIN_DICE` for every class that either map holds with every
lesion of the reference kept. A lesion is kept when the candidate's tumour overlaps it by at
least 6 mm3 (Lemay et al.'s detection rule, `batseg.metrics.detection`), so a small lesion lost
fails the check however high the Dice of the large ones. Whether the kept lesions keep their type
is reported too; a changed type already shows in the per-class Dice.

`scripts/check_same_result.py` runs the paths with `batseg predict` and applies this per case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from batseg.labels import TUMOUR_CLASSES
from batseg.metrics import detection, dice

MIN_DICE = 0.99  # the tolerance, per class


@dataclass
class Agreement:
    """How a candidate label map agrees with the reference one."""

    differing_voxels: int
    dice: dict[str, float] = field(default_factory=dict)  # classes present in either map
    reference_lesions: int = 0
    kept_lesions: int = 0
    same_type_lesions: int = 0

    @property
    def identical(self) -> bool:
        return self.differing_voxels == 0

    @property
    def every_lesion_kept(self) -> bool:
        return self.kept_lesions == self.reference_lesions

    @property
    def same_result(self) -> bool:
        """Identical, or every class Dice >= MIN_DICE with every reference lesion kept."""
        return self.identical or (self.every_lesion_kept and all(value >= MIN_DICE for value in self.dice.values()))

    def as_dict(self) -> dict[str, Any]:
        return {"differing_voxels": self.differing_voxels, "dice": self.dice,
                "reference_lesions": self.reference_lesions, "kept_lesions": self.kept_lesions,
                "same_type_lesions": self.same_type_lesions, "identical": self.identical,
                "same_result": self.same_result}


def compare_labels(reference: np.ndarray, candidate: np.ndarray, spacing: Sequence[float]) -> Agreement:
    """The agreement of `candidate` with `reference` (label maps 0-4 on one grid, spacing in mm)."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    scores = {tumour.key: dice(candidate == tumour.value, reference == tumour.value)
              for tumour in TUMOUR_CLASSES if (reference == tumour.value).any() or (candidate == tumour.value).any()}
    # The reference plays the truth: its lesions are the ones that must be kept.
    found = detection(candidate, reference, spacing)
    return Agreement(
        differing_voxels=int(np.count_nonzero(reference != candidate)),
        dice={key: float(value) for key, value in scores.items()},
        reference_lesions=found["true_lesions"],
        kept_lesions=found["detected_lesions"],
        same_type_lesions=found["types_correct"] or 0,
    )


def summarise(agreements: Sequence[Agreement]) -> dict[str, Any]:
    """Over cases: how many are identical / the same result, the lowest Dice per class, lesions kept."""
    lowest: dict[str, float] = {}
    for agreement in agreements:
        for key, value in agreement.dice.items():
            lowest[key] = min(value, lowest.get(key, 1.0))
    return {
        "cases": len(agreements),
        "identical": sum(a.identical for a in agreements),
        "same_result": sum(a.same_result for a in agreements),
        "lowest_dice": lowest,
        "reference_lesions": sum(a.reference_lesions for a in agreements),
        "kept_lesions": sum(a.kept_lesions for a in agreements),
        "same_type_lesions": sum(a.same_type_lesions for a in agreements),
        "differing_voxels": sum(a.differing_voxels for a in agreements),
    }
