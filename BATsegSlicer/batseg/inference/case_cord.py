"""A case's spinal cord: the user's mask file, or the cord locator's mask, and what follows from it.

The cord mask serves three things: the cascade crop (the tumour network runs on a box around
the cord, `canal_crop`), the lesion report's inside/outside-the-cord field, and the image-based
contrast check (`batseg.cord_locator.contrast_check`). Where it comes from, in order: a mask the
user gave (`--cord-masks`, e.g. from the Spinal Cord Toolbox), else the cord locator shipped with
batseg (unless `--no-cord-locator`). A locator that finds no cord, or one too short to trust
(`LocatedCord.plausible`), is said in a warning, and the case is then segmented whole.

The contrast check speaks only where the scanner metadata is silent: a DICOM series or BIDS
sidecar that names the contrast has already decided (`batseg.acquisition`), and a NIfTI file,
which names none, is what the check is for. It needs only a piece of cord, not its whole course,
so a located cord too short to crop to still serves it (`cord_trusted: false` in the report). When
there is no cord to measure at all, the check cannot answer, and the user is told so: a T2 scan is
one that the locator, trained on T1-like images, may fail to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from batseg import acquisition
from batseg.batch import cord_mask_path, read_cord_mask
from batseg.io import Case

NO_CORD_FOUND = ("the cord locator found no spinal cord in this scan, so the whole volume was segmented and "
                 "inside or outside the cord is unknown; check that it is a sagittal spinal MRI")
SHORT_CORD = ("the cord locator followed the spinal cord over only {share:.0%} of the scan's head-foot extent, too "
              "little to trust, so the whole volume was segmented and inside or outside the cord is unknown")
CONTRAST_UNCHECKED = ("the image could not be checked for T2 contrast (no spinal cord found to compare with the "
                      "fluid around it) and its metadata does not name the contrast; BATseg is trained on T1-weighted "
                      "scans with contrast: make sure this is the post-contrast T1 series")


@dataclass
class CaseCord:
    """The cord mask of a case (None: none known), where it came from, and what the image says."""

    mask: np.ndarray | None = None
    source: str | None = None  # "file" or the locator's name and version
    file: Path | None = None
    # {"fluid_to_cord_ratio": float | None, "looks_t2": bool, "cord_trusted": bool}; None: not measured
    contrast: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def report_fields(self) -> dict[str, Any]:
        """What the lesion report records of the cord."""
        return {"cord_mask_file": None if self.file is None else str(self.file), "cord_mask_source": self.source,
                "contrast_check": self.contrast}


def find_case_cord(case: Case, image: sitk.Image, cord_masks: Path | None, use_locator: bool,
                   facts: acquisition.Acquisition) -> CaseCord:
    """The case's cord (module docstring): the user's mask, else the locator's, else none."""
    cord = CaseCord()
    mask_path = cord_mask_path(case, cord_masks, single=True)
    untrusted = None  # a located cord too short to crop to: still enough for the contrast check
    if mask_path is not None:
        cord.mask, cord.source, cord.file = read_cord_mask(mask_path, image, case.name), "file", mask_path
    elif use_locator:
        from batseg.cord_locator.locate import locate_cord

        located = locate_cord(image)
        if located.plausible:
            cord.mask, cord.source = located.mask, located.locator
        else:
            cord.warnings.append(NO_CORD_FOUND if not located.found else SHORT_CORD.format(share=located.length_share))
            untrusted = located.mask if located.found else None
    if cord_masks is not None and mask_path is None:
        cord.warnings.append(f"no spinal cord mask for this case in {cord_masks}"
                             + ("; the cord locator's was used" if cord.mask is not None else
                                ": inside or outside the cord unknown"))
    if mask_path is not None or use_locator:
        _check_contrast(cord, image, facts, untrusted)
    return cord


def _check_contrast(cord: CaseCord, image: sitk.Image, facts: acquisition.Acquisition,
                    untrusted: np.ndarray | None) -> None:
    """Record the fluid-to-cord ratio (on the cord, else on an untrusted located piece of it), and
    warn when it says T2, or cannot be measured, and the metadata says nothing."""
    from batseg.cord_locator.contrast_check import check_contrast

    mask = cord.mask if cord.mask is not None else untrusted
    result = None
    if mask is not None:
        volume = sitk.GetArrayViewFromImage(image)
        result = check_contrast(volume, mask, tuple(float(s) for s in reversed(image.GetSpacing())))
        cord.contrast = {"fluid_to_cord_ratio": None if result.ratio is None else round(result.ratio, 3),
                         "looks_t2": result.looks_t2, "cord_trusted": cord.mask is not None}
    if acquisition.weighting(facts) != acquisition.UNKNOWN or acquisition.contrast_warning(facts):
        return  # the metadata has spoken
    if result is None or result.ratio is None:
        cord.warnings.append(CONTRAST_UNCHECKED)
    elif result.looks_t2:
        cord.warnings.append(str(result.warning()))
