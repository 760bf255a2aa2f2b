"""Image input and output: reading NIfTI / NRRD / MetaImage files and DICOM series, checking
that an image can be segmented, finding the cases of an input path, and the image writer that
`batseg.atomic_files` writes outputs with (`image_writer`, `image_suffix`).

Every problem a user can cause raises `InputImageError` with one line saying what is wrong and
what to do. Checks run in this order, each as early as possible (header parsing lives in
`batseg.image_headers`, DICOM series checks in `batseg.dicom`):
1. header-level (no pixel data read): the file exists and is readable, the voxel spacing is
   present and positive *as written in the header* (SimpleITK silently substitutes 1 mm for a
   missing NRRD / MetaImage spacing and takes |pixdim| for a negative NIfTI one), a DICOM series
   has PixelSpacing, one volume (no repeated slice positions = no 4-D / multi-echo series) and
   evenly spaced slices, and the memory the whole pipeline will need (a caller-supplied
   `memory_check`, see `batseg.inference.memory`) is available;
2. image-level: 3-D (a 2-D image, a single slice, a 4-D series and a multi-component/RGB image
   are refused), non-empty, finite, not constant, within float32's range.

Decisions:
- NaN / infinite voxels are refused, not replaced. A non-finite voxel means the conversion or
  an upstream processing step went wrong; inventing intensities there would change the z-score
  of the whole volume and could paint or hide a lesion silently. The message tells the user how
  to fix the file (e.g. replace them with 0 in their own tool) so the choice stays theirs. In
  NIfTI files they are counted in the file itself, because SimpleITK's NIfTI reader silently
  replaces them; the same pass refuses a truncated NIfTI, which SimpleITK reads without error
  with the missing voxels set to 0.
- Float intensities that float32 cannot carry (beyond +-3.4e38, or varying by less than 1e-6,
  e.g. a float64 image scaled by 1e300 or 1e-300) are refused, not rescaled, for the same reason:
  no scanner or converter writes such values on purpose, so they reveal a broken conversion that
  a silent rescale would hide (and a rescale here could not reach the report as a warning). The
  z-score makes the model blind to the scale, so rescaling is safe for the user to do.
- ITK's own messages (warnings, and lines some readers print straight to stderr) are silenced
  while reading: the one-line error is the only thing the user sees.
- A 4-D file whose fourth axis has length 1 is a 3-D volume written by some tools: it is read
  as that volume (SimpleITK already does so for NIfTI).
- A DICOM folder holding several series is refused when that case is read (with the series
  listed): segmenting the wrong series (a localiser, a T2) would give a confident, meaningless
  answer. One series per folder; several folders in one input tree are several cases, and one
  bad case does not stop the others.
- Output images are written to a temporary file in the destination folder whose name keeps the
  real extension (SimpleITK chooses the writer from it), then renamed with `os.replace`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from batseg.dicom import DicomSeries, dicom_tags, find_dicom_series, sort_dicom_slices
from batseg.errors import InputImageError
from batseg.image_headers import (
    gzip_stream_problem, header_spacing_problem, nifti_data_problem, nonfinite_message, quiet_itk,
)

# File suffixes read as image files (compound suffixes first).
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOMDIR_NAME = "DICOMDIR"
NNUNET_CHANNEL_SUFFIX = "_0000"  # nnU-Net's file-name suffix of input channel 0
# Float intensity limits (see `check_float32_range`): the model computes in float32, and the
# z-score divides by max(std, 1e-8), so a smaller spread is not normalised but flattened; the
# minimum keeps a margin of 100 over that floor (no real scan comes anywhere near either limit).
FLOAT32_MAX = float(np.finfo(np.float32).max)
MIN_INTENSITY_STD = 1e-6


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image, known before any pixel is read."""

    dimension: int
    size: tuple[int, ...]  # SimpleITK order (i, j, k)
    spacing: tuple[float, ...]  # SimpleITK order, mm
    components: int
    bytes_per_component: int
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def voxels(self) -> int:
        return int(np.prod(self.size, dtype=np.int64))


@dataclass(frozen=True)
class Case:
    """One image to segment: its name (used for output files), its path and how to read it."""

    name: str
    path: Path  # an image file, or a folder holding one DICOM series
    kind: str  # "file" or "dicom"
    dicom_files: tuple[str, ...] = ()  # the series' files (sorted and checked when read)
    problem: str = ""  # why this case cannot be read, found while listing the input (one line)


def case_name(path: str | os.PathLike) -> str:
    """The file name without its image suffix (CASE.nii.gz -> CASE); a folder's own name.

    nnU-Net's channel suffix of the single input channel is dropped too
    (imagesTr/CASE_0000.nii.gz -> CASE), as nnU-Net's predictor names its outputs, so that the
    prediction pairs with labelsTr/CASE.nii.gz in `batseg evaluate`.
    """
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        return name
    return name[: -len(NNUNET_CHANNEL_SUFFIX)] if name.endswith(NNUNET_CHANNEL_SUFFIX) and len(name) > 5 else name


def is_image_file(path: Path) -> bool:
    """True for a file whose name ends with one of `IMAGE_SUFFIXES` (hidden files excluded)."""
    return path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(IMAGE_SUFFIXES)


def _itk_reason(exc: Exception) -> str:
    """A short reason from an ITK exception (its last 'ERROR' line, without class and address)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    reason = (errors or lines or ["unknown error"])[-1]
    if "):" in reason:
        reason = reason.split("):", 1)[1].strip()
    return reason[:160]


def _unreadable(path: Path, exc: Exception) -> InputImageError:
    # ITK says "unable to determine ImageIO reader" for a damaged gzip stream: name the real cause.
    if path.is_file() and path.name.lower().endswith(".gz"):
        problem = gzip_stream_problem(path, path.name)
        if problem:
            return InputImageError(problem)
    reason = _itk_reason(exc)
    if "Zero-valued spacing" in str(exc):
        return InputImageError(
            f"{path.name} has a zero voxel spacing in its header; re-export it with the real voxel size"
        )
    return InputImageError(
        f"cannot read {path.name} as a NIfTI, NRRD, MetaImage or DICOM image ({reason}); "
        "check that the file is complete and in one of these formats"
    )


# ---------------------------------------------------------------------------------------------
# Cases of an input path
# ---------------------------------------------------------------------------------------------


def _dicom_cases(folder: Path, top_name: str) -> list[Case]:
    # BIDS sidecars (.json) beside the images are not DICOM either (batseg.acquisition reads them).
    series = find_dicom_series(folder, not_dicom=IMAGE_SUFFIXES + (".json",))
    by_folder: dict[Path, list[DicomSeries]] = {}
    for entry in series:
        by_folder.setdefault(entry.folder, []).append(entry)
    cases = []
    for series_folder, entries in sorted(by_folder.items()):
        relative = series_folder.relative_to(folder)
        name = top_name if relative == Path(".") else "_".join(relative.parts)
        problem = ""
        if len(entries) > 1:
            listed = "; ".join(f"{e.description or 'no description'} ({len(e.files)} files)" for e in entries)
            problem = (
                f"folder {series_folder} holds {len(entries)} DICOM series ({listed}); "
                "put the sagittal T1 Gd series in a folder of its own"
            )
        files = tuple(f for e in entries for f in e.files)
        cases.append(Case(name, series_folder, "dicom", files, problem))
    return cases


def find_cases(input_path: str | os.PathLike) -> list[Case]:
    """The cases of an input: an image file, a DICOM file or DICOMDIR, or a folder.

    A folder's image files (at its top level) are one case each; DICOM series anywhere below it
    are one case per folder. A single DICOM file stands for the series it belongs to.
    """
    path = Path(input_path).expanduser()
    if not path.exists():
        raise InputImageError(f"input {path} does not exist; give an image file, a DICOM folder or a DICOMDIR")
    if path.is_file() and path.name.upper() == DICOMDIR_NAME:
        path = path.parent
    if path.is_file():
        if path.name.lower().endswith(IMAGE_SUFFIXES):
            return [Case(case_name(path), path, "file")]
        cases = [c for c in _dicom_cases(path.parent, path.parent.name) if str(path) in map(str, c.dicom_files)]
        if not cases:
            raise InputImageError(
                f"{path.name} is neither a NIfTI/NRRD/MetaImage file (by its extension) nor part of a readable "
                "DICOM series; give a .nii.gz, .nrrd or DICOM input"
            )
        return cases
    files = sorted(p for p in path.iterdir() if is_image_file(p))
    cases = [Case(case_name(p), p, "file") for p in files]
    cases += _dicom_cases(path, path.name)
    if not cases:
        raise InputImageError(
            f"folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)}) and no DICOM series; "
            "give an image file or a folder of images"
        )
    check_unique_names(cases, path)
    return cases


def check_unique_names(cases: list[Case], path: Path) -> None:
    """Refuse inputs of folder `path` that would write the same output name."""
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputImageError(
            f"several inputs in {path} would write the same output name ({', '.join(duplicates)}); rename them"
        )


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _checked_series(files: tuple[str, ...], name: str) -> tuple[tuple[str, ...], float]:
    """`sort_dicom_slices`, remembered so that reading a case checks its headers once."""
    return sort_dicom_slices(files, name)


def read_image_info(case: Case) -> ImageInfo:
    """The header facts of a case (size, spacing, components), checking the spacing first."""
    if case.problem:
        raise InputImageError(case.problem)
    if case.kind == "dicom":
        files, gap = _checked_series(case.dicom_files, case.name)
        reader = dicom_tags(files[0])
        size = tuple(reader.GetSize()[:2]) + (len(files),)
        spacing = tuple(reader.GetSpacing()[:2]) + (gap or reader.GetSpacing()[2],)
        if len(files) == 1:
            size, spacing = tuple(reader.GetSize()), tuple(reader.GetSpacing())
        return ImageInfo(
            len(size), size, spacing, reader.GetNumberOfComponents(), _bytes_per_component(reader),
            tuple(reader.GetDirection()),
        )
    problem = header_spacing_problem(case.path)
    if problem:
        raise InputImageError(problem)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(case.path))
    try:
        with quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _unreadable(case.path, exc) from None
    return ImageInfo(
        reader.GetDimension(), tuple(reader.GetSize()), tuple(reader.GetSpacing()),
        reader.GetNumberOfComponents(), _bytes_per_component(reader), tuple(reader.GetDirection()),
    )


def _bytes_per_component(reader: sitk.ImageFileReader) -> int:
    """Bytes of one pixel component, from the pixel type's name (e.g. '16-bit signed integer')."""
    text = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    for bits in (8, 16, 32, 64):
        if f"{bits}-bit" in text:
            return bits // 8
    return 8


def check_info(info: ImageInfo, name: str) -> None:
    """Refuse, from the header alone, images that are not one 3-D scalar volume."""
    size = [s for s in info.size]
    if info.dimension == 4 and size[3] == 1:
        size = size[:3]
    if info.dimension > 4 or (info.dimension == 4 and len(size) == 4):
        raise InputImageError(
            f"{name} is a {info.dimension}-D image (size {' x '.join(map(str, info.size))}); "
            "give a single 3-D volume (extract one time point or echo first)"
        )
    if info.dimension < 3 or min(size) <= 1:
        raise InputImageError(
            f"{name} is 2-D (size {' x '.join(map(str, info.size))}); BATseg segments 3-D volumes: "
            "give the whole series of slices"
        )
    if info.components != 1:
        raise InputImageError(
            f"{name} has {info.components} components per voxel (colour or vector image); "
            "give a grey-level MRI volume"
        )


def read_image(case: Case, memory_check: Callable[[ImageInfo], None] | None = None) -> sitk.Image:
    """Read a case as a 3-D scalar SimpleITK image after the header checks (module docstring).

    `memory_check(info)` may raise `InputImageError` when the pipeline would not fit in memory;
    it runs before any pixel data is read.
    """
    info = read_image_info(case)
    check_info(info, case.name)
    if memory_check is not None:
        memory_check(info)
    try:
        with quiet_itk():
            if case.kind == "dicom":
                reader = sitk.ImageSeriesReader()
                reader.SetFileNames(list(_checked_series(case.dicom_files, case.name)[0]))
                image = reader.Execute()
            else:
                image = sitk.ReadImage(str(case.path))
    except RuntimeError as exc:
        raise _unreadable(case.path, exc) from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if case.kind == "file" and case.path.name.lower().endswith((".nii", ".nii.gz")):
        problem = nifti_data_problem(case.path, case.name)
        if problem:
            raise InputImageError(problem)
    validate_image(image, case.name)
    return image


def validate_image(image: sitk.Image, name: str = "the image") -> None:
    """Refuse an in-memory image that cannot be segmented (see the module docstring)."""
    size = image.GetSize()
    check_info(ImageInfo(image.GetDimension(), size, image.GetSpacing(), image.GetNumberOfComponentsPerPixel(), 4), name)
    spacing = image.GetSpacing()
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise InputImageError(
            f"{name} has an invalid voxel spacing {tuple(round(s, 4) for s in spacing)} mm; set the real voxel size"
        )
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        raise InputImageError(f"{name} has a degenerate direction matrix; fix the image header")
    array = sitk.GetArrayViewFromImage(image)
    if array.size == 0:
        raise InputImageError(f"{name} is empty (no voxels); give a complete volume")
    if array.dtype.kind == "f":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputImageError(nonfinite_message(name, bad))
    low, high = array.min(), array.max()
    if low == high:
        raise InputImageError(
            f"{name} is constant (every voxel is {float(low):g}): it holds no image; check the export"
        )
    if array.dtype.kind == "f":
        check_float32_range(array, float(low), float(high), name)


def check_float32_range(array: np.ndarray, low: float, high: float, name: str) -> None:
    """Refuse float intensities that the model's float32 arithmetic cannot represent (module docstring).

    Values beyond float32's range become infinite when cast, and intensities that vary by less
    than `MIN_INTENSITY_STD` are flattened by the z-score (`batseg.inference.predictor.zscore`
    divides by at least 1e-8) or vanish in the cast (1e-300 becomes 0): either way the network
    sees no image and reports no lesion with exit status 0.
    """
    shown = f"{low:.3g} to {high:.3g}"
    if max(abs(low), abs(high)) > FLOAT32_MAX:
        raise InputImageError(
            f"{name} has intensities {shown}, beyond the float32 range (+-{FLOAT32_MAX:.2g}) the model computes in; "
            "fix the conversion that produced it (or rescale it, e.g. to 0-1000) and try again"
        )
    if float(np.std(array, dtype=np.float64)) < MIN_INTENSITY_STD:
        raise InputImageError(
            f"{name} has intensities {shown}, varying by less than {MIN_INTENSITY_STD:g}: too small for the "
            "float32 arithmetic of the model; fix the conversion that produced it (or rescale it, e.g. to 0-1000)"
        )


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    lower = path.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[-len(suffix):]
    return path.suffix


def image_writer(image: sitk.Image, compress: bool = True) -> Callable[[Path], None]:
    """A writer of `image` for `batseg.atomic_files` (the format follows the temporary suffix)."""

    def write(temporary: Path) -> None:
        with quiet_itk():
            sitk.WriteImage(image, str(temporary), compress)

    return write


def image_suffix(path: str | os.PathLike) -> str:
    """The image extension of `path` (".nii.gz" included), for the temporary file's name."""
    return _suffix(Path(path))


def vector_image(channels: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A multi-component float32 image from a (C, z, y, x) array, on `reference`'s grid."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(channels.astype(np.float32), 0, -1)), isVector=True)
    image.CopyInformation(reference)
    return image
