"""The cases of a batch (`batseg predict` on a folder): which files are scans, which are not.

`find_batch_cases` lists the cases of an input as `batseg.io.find_cases` does, with three
additions for folders of real studies:
- `recursive`: image files anywhere below the folder, not only at its top (a BIDS tree:
  sub-01/anat/sub-01_T1w.nii.gz). Hidden folders, BIDS `derivatives` folders (processed data,
  segmentations) and the run's own output folder are not searched for image files (DICOM
  series are searched for in the whole tree, as without `recursive`). A case is named after its
  file (sub-01_T1w); where two files of the tree give the same name, each of them is named
  after its folders too (site1_scan, site2_scan), as DICOM series in sub-folders are.
- Files that are label maps or masks are skipped with a note instead of being segmented: by
  name (`MASK_NAME`: ..._seg, ..._dseg, ..._mask, ..._label(s), ..._manual, ..._seg-manual,
  ..._segmentation; the names of the Spinal Cord Toolbox, BIDS derivatives, nnU-Net label
  folders and manual segmentations), and DICOM objects that are not images (a DICOM SEG or
  RTSTRUCT beside the series). A file given by itself is never skipped by name: the user chose it.
- `label_map_reason`: after reading, an integer image with at most `MAX_LABEL_VALUES` distinct
  values is a label map or mask whatever its name (an MRI scan has hundreds of grey levels);
  the pipeline skips it with a note in a batch and refuses it in one line when it is the only input.

It also finds the spinal cord mask of a case (`cord_mask_path`, `read_cord_mask`) for the
lesion report's inside/outside-the-cord field (`batseg.report`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from batseg.errors import BATsegError, InputImageError
from batseg.image_headers import quiet_itk
from batseg.io import IMAGE_SUFFIXES, Case, _dicom_cases, case_name, check_unique_names, find_cases, is_image_file

# A file whose name (without its image suffix and nnU-Net's _0000) ends like this is a label map or mask.
MASK_NAME = re.compile(
    r"(?:^|[_-])(?:seg|dseg|mask|masks|label|labels|labelmap|manual|segmentation|manualseg|roi)$", re.IGNORECASE
)
# BIDS folders of processed data (derivatives: segmentations, masks, processed images): not scans to segment.
SKIPPED_FOLDERS = frozenset({"derivatives"})
# An integer image with this many distinct values or fewer is a label map or mask, not an MRI scan.
MAX_LABEL_VALUES = 64
# DICOM modalities that hold no image to segment (segmentations, structures, reports, states).
NOT_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "SR", "PR", "KO", "RTPLAN", "RTDOSE", "REG", "DOC"})
TAG_MODALITY = "0008|0060"
# Suffixes tried, in order, after a case's name for its spinal cord mask (the Spinal Cord Toolbox writes NAME_seg).
CORD_MASK_SUFFIXES: tuple[str, ...] = ("", "_seg", "_cord")


@dataclass(frozen=True)
class Skipped:
    """An input file or series left out of the batch, and why (one line)."""

    path: Path
    reason: str


class NotAScan(InputImageError):
    """The input is a label map or mask, not a scan: skipped in a batch, refused when alone."""


def find_batch_cases(
    input_path: str | os.PathLike, recursive: bool = False, exclude: tuple[Path, ...] = ()
) -> tuple[list[Case], list[Skipped]]:
    """The cases of an input and the files skipped as label maps or masks (module docstring).

    `exclude`: folders never searched (the output folder, when it lies inside the input).
    """
    path = Path(input_path).expanduser()
    if not path.is_dir():
        return find_cases(path), []
    excluded = {folder.absolute() for folder in exclude}
    files = _image_files(path, recursive, excluded)
    skipped = [Skipped(p, "its name marks a label map or mask") for p in files if is_mask_name(p)]
    files = [p for p in files if not is_mask_name(p)]
    cases = [Case(name, p, "file") for name, p in _unique_names(path, files)]
    for case in _dicom_cases(path, path.name):  # the output folder too: a SEG written there is skipped as such
        modality = _modality(case)
        if modality in NOT_IMAGE_MODALITIES:
            skipped.append(Skipped(case.path, f"a DICOM {modality} object, not an image series"))
        else:
            cases.append(case)
    if not cases:
        if skipped:
            raise InputImageError(
                f"folder {path} holds only label maps or masks ({len(skipped)}, e.g. {skipped[0].path.name}); "
                "give the scans"
            )
        where = "below it" if recursive else "in it (add --recursive to search its sub-folders)"
        raise InputImageError(
            f"folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)}) and no DICOM series {where}; "
            "give an image file or a folder of images"
        )
    check_unique_names(cases, path)
    return cases, skipped


def is_mask_name(path: Path) -> bool:
    """True when a file's name marks it as a label map or mask (`MASK_NAME`)."""
    return MASK_NAME.search(case_name(path)) is not None


def _image_files(folder: Path, recursive: bool, excluded: set[Path]) -> list[Path]:
    """The image files of a folder (its top level, or its whole tree without skipped folders)."""
    if not recursive:
        return sorted(p for p in folder.iterdir() if is_image_file(p))
    found = []
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and d.lower() not in SKIPPED_FOLDERS and not _inside(here / d, excluded)
        )
        found += [here / name for name in sorted(names) if is_image_file(here / name)]
    return found


def _inside(path: Path, folders: set[Path]) -> bool:
    absolute = path.absolute()
    return any(absolute == folder or folder in absolute.parents for folder in folders)


def _unique_names(top: Path, files: list[Path]) -> list[tuple[str, Path]]:
    """(case name, file): the file's case name, with its folders in front where two files share one."""
    names = [case_name(p) for p in files]
    shared = {n for n in names if names.count(n) > 1}
    named = []
    for name, path in zip(names, files):
        if name in shared:
            folders = path.parent.relative_to(top).parts
            name = "_".join((*folders, name)) if folders else name
        named.append((name, path))
    return named


def _modality(case: Case) -> str:
    """The DICOM Modality of a series' first file ("" when unreadable)."""
    if not case.dicom_files:
        return ""
    reader = sitk.ImageFileReader()
    reader.SetFileName(case.dicom_files[0])
    reader.LoadPrivateTagsOff()
    try:
        with quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(TAG_MODALITY).strip().upper() if reader.HasMetaDataKey(TAG_MODALITY) else ""


def label_map_reason(image: sitk.Image) -> str | None:
    """Why a read image is a label map or mask, not a scan (None for a scan): an integer image
    with at most `MAX_LABEL_VALUES` distinct values."""
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind not in "iub":
        return None
    flat = array.reshape(-1)
    if flat.size > 200_000:  # a scan shows more values than that in any sample: no full sort needed
        sample = flat[:: max(1, flat.size // 200_000)]
        if np.unique(sample).size > MAX_LABEL_VALUES:
            return None
    values = np.unique(flat)
    if values.size > MAX_LABEL_VALUES:
        return None
    shown = ", ".join(str(v) for v in values[:6]) + (", ..." if values.size > 6 else "")
    return f"an integer image with only {values.size} distinct values ({shown}): a label map or mask, not a scan"


def cord_mask_path(case: Case, cord_masks: Path | None, single: bool) -> Path | None:
    """The spinal cord mask of a case: `cord_masks` itself (a file, for a single case), or the file
    CASE[_seg|_cord].nii.gz (any image suffix; also after the input file's own stem) in that folder."""
    if cord_masks is None:
        return None
    if cord_masks.is_file():
        if not single:
            raise BATsegError(
                f"--cord-masks {cord_masks} is one file but the input holds several cases; give a folder of "
                "CASE_seg.nii.gz masks"
            )
        return cord_masks
    stems = [case.name]
    if case.kind == "file":
        stem = case.path.name
        for suffix in IMAGE_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        stems.append(stem)
    for stem in dict.fromkeys(stems):
        for extra in CORD_MASK_SUFFIXES:
            for suffix in IMAGE_SUFFIXES:
                candidate = cord_masks / f"{stem}{extra}{suffix}"
                if candidate.is_file() and (case.kind != "file" or candidate.resolve() != case.path.resolve()):
                    return candidate
    return None


def check_cord_masks(cord_masks: str | os.PathLike | None) -> Path | None:
    """The --cord-masks path, refused in one line when it does not exist."""
    if cord_masks is None:
        return None
    path = Path(cord_masks).expanduser()
    if not path.exists():
        raise BATsegError(f"--cord-masks {path} does not exist: give a spinal cord mask file or a folder of them")
    if path.is_file() and not path.name.lower().endswith(IMAGE_SUFFIXES):
        raise BATsegError(f"--cord-masks {path} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
    return path


def read_cord_mask(path: Path, reference: sitk.Image, case_name_: str) -> np.ndarray:
    """The cord mask (z, y, x, bool) of a case, which must lie on the case's own grid."""
    try:
        with quiet_itk():
            mask = sitk.ReadImage(str(path))
    except RuntimeError:
        raise BATsegError(f"case {case_name_}: the spinal cord mask {path} cannot be read; check the file") from None
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise BATsegError(f"case {case_name_}: the spinal cord mask {path} is not a 3-D single-channel image")
    checks = (
        ("size", mask.GetSize(), reference.GetSize(), 0.0, 0.0),
        ("spacing", mask.GetSpacing(), reference.GetSpacing(), 1e-4, 0.0),
        ("origin", mask.GetOrigin(), reference.GetOrigin(), 0.0, 0.01 * min(reference.GetSpacing())),
        ("direction", mask.GetDirection(), reference.GetDirection(), 0.0, 1e-4),
    )
    for what, given, expected, rtol, atol in checks:
        if not np.allclose(given, expected, rtol=rtol, atol=atol):
            raise BATsegError(
                f"case {case_name_}: the spinal cord mask {path.name} is not on the scan's grid (its {what} differs); "
                "give the mask segmented on this scan"
            )
    return sitk.GetArrayFromImage(mask) != 0
