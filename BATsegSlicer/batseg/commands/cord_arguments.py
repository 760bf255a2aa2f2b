"""The spinal cord flags shared by `batseg predict` and `batseg tune-postprocess`.

Both commands must predict along the same path: a minimum lesion volume chosen on whole-volume
predictions is not the right one for the cascade crop, which leaves out most of the false
lesions outside the spinal canal. So the flags, their defaults and their checks live here once:
`--cord-masks` (the user's cord masks win), `--crop-to-cord [MARGIN_MM]` (the cascade crop, on by
default), `--no-crop` (the whole volume) and `--no-cord-locator` (no cord unless the user gives it).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

# Kept in step with batseg.inference.canal_crop.DEFAULT_MARGIN_MM (a test checks): importing the
# inference package here would slow every `batseg --help`.
DEFAULT_CROP_MARGIN_MM = 25.0


@dataclass(frozen=True)
class CordSettings:
    """Where a run takes the cord from, and whether it crops to it."""

    cord_masks: Path | None
    crop_margin_mm: float | None  # None: the whole volume
    cord_locator: bool

    def as_dict(self) -> dict[str, object]:
        """What a model file or report records of the path (no machine path: only whether masks were given)."""
        return {"crop_margin_mm": self.crop_margin_mm, "cord_locator": self.cord_locator,
                "cord_masks": self.cord_masks is not None}


def add_cord_arguments(parser: argparse.ArgumentParser, verb: str = "run the tumour network") -> None:
    """Add the four cord flags to a sub-command."""
    parser.add_argument(
        "--cord-masks", metavar="PATH",
        help="spinal cord mask(s) on the scans' grids (a file for one case, or a folder of CASE.nii.gz or "
        "CASE_seg.nii.gz, e.g. from the Spinal Cord Toolbox's sct_deepseg_sc), used instead of the cord locator's",
    )
    parser.add_argument(
        "--crop-to-cord", nargs="?", type=float, const=DEFAULT_CROP_MARGIN_MM, default=DEFAULT_CROP_MARGIN_MM,
        metavar="MARGIN_MM",
        help=f"{verb} only on a box around the spinal cord grown by MARGIN_MM (default "
        f"{DEFAULT_CROP_MARGIN_MM:g}), widened where a lesion reaches its border: the cascade crop, on by default",
    )
    parser.add_argument(
        "--no-crop", action="store_true",
        help="segment the whole volume instead of a box around the spinal cord",
    )
    parser.add_argument(
        "--no-cord-locator", action="store_true",
        help="do not look for the spinal cord with batseg's cord locator (then no crop without --cord-masks, no "
        "inside/outside-the-cord field and no image-based contrast check)",
    )


def cord_settings(args: argparse.Namespace) -> CordSettings:
    """The checked cord settings of parsed arguments (BATsegError on a bad margin or mask path)."""
    from batseg.batch import check_cord_masks
    from batseg.errors import BATsegError

    crop = getattr(args, "crop_to_cord", DEFAULT_CROP_MARGIN_MM)
    if not math.isfinite(crop) or crop < 0:
        raise BATsegError(f"--crop-to-cord {crop:g}: give a margin in mm, zero or positive (default {DEFAULT_CROP_MARGIN_MM:g})")
    return CordSettings(
        cord_masks=check_cord_masks(getattr(args, "cord_masks", None)),
        crop_margin_mm=None if getattr(args, "no_crop", False) else crop,
        cord_locator=not getattr(args, "no_cord_locator", False),
    )
