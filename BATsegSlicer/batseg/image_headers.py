"""What image files say about themselves, read without SimpleITK's help where it would hide a problem.

SimpleITK (ITK) smooths over several header defects: a NRRD or MetaImage header without a
spacing becomes 1 mm, a negative NIfTI pixdim becomes positive, NaN and infinite voxels in a
NIfTI file are replaced, a truncated NIfTI is read with zeros for the missing voxels, and a
.nii.gz whose compressed stream is damaged is read without its gzip CRC being checked. The
functions here read the headers and data blocks themselves and describe such a problem in one
line (or return None), so that `batseg.io` (input images) and `batseg.evaluation` (label files)
can refuse the file. `quiet_itk` silences ITK's own messages during reads, so that the one-line
error is all the user sees.

NIfTI-1 and NIfTI-2 headers are decoded by nibabel, with its checks off: they would quietly
repair some of the very defects looked for here (a negative pixdim becomes positive). One
reader, `nifti_data_problem`, checks a NIfTI file's data block for every caller, in one pass
over the file (a .nii.gz is decompressed once, to its end, so that its CRC is checked too).
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import SimpleITK as sitk


@contextmanager
def quiet_itk() -> Iterator[None]:
    """Silence ITK's own messages while reading or writing: its warnings and the lines some
    readers (MetaIO, GDCM) print straight to the process's stderr.

    Each problem they point at is reported by our checks or exceptions as one line instead.
    The stderr file descriptor is pointed at /dev/null for the duration (flushed first).
    """
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        saved = -1
    if saved >= 0:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


@dataclass(frozen=True)
class NiftiLayout:
    """The parts of a NIfTI-1 / NIfTI-2 header needed to find and check the data block."""

    dims: tuple[int, ...]  # dim[0..7]
    bitpix: int
    offset: int  # vox_offset
    pixdim: tuple[float, ...]  # pixdim[0..7]
    float_dtype: np.dtype | None  # the stored voxel type (byte order included) when it can hold NaN or infinity

    @property
    def voxels(self) -> int:
        return int(np.prod([max(1, d) for d in self.dims[1 : 1 + max(1, min(self.dims[0], 7))]], dtype=np.int64))

    @property
    def spacing(self) -> list[float]:
        """pixdim[1..ndim]: the voxel sizes along the stored axes."""
        return list(self.pixdim[1 : 1 + max(0, min(self.dims[0], 7))])


def nifti_layout(block: bytes) -> NiftiLayout | None:
    """The layout of the NIfTI-2 (540-byte) or NIfTI-1 (348-byte) header that `block` starts
    with, as stored; None if it is not NIfTI."""
    header = _nifti_header(block)
    if header is None:
        return None
    return NiftiLayout(
        tuple(int(d) for d in header["dim"]), int(header["bitpix"]), header.get_data_offset(),
        tuple(float(p) for p in header["pixdim"]), _float_dtype(header),
    )


def _nifti_header(block: bytes) -> Any:
    """nibabel's header for `block` (checks off: the values as stored), or None if it is not NIfTI."""
    import nibabel

    for kind in (nibabel.Nifti2Header, nibabel.Nifti1Header):  # NIfTI-2 (sizeof_hdr 540) is told apart first
        if kind.may_contain_header(block):
            try:
                return kind(block[: kind.sizeof_hdr], check=False)
            except (ValueError, nibabel.spatialimages.HeaderDataError):
                return None
    return None


def _float_dtype(header: Any) -> np.dtype | None:
    """The voxel type of a floating-point data block (with the header's byte order), else None."""
    import nibabel

    try:
        dtype = header.get_data_dtype()
    except (KeyError, nibabel.spatialimages.HeaderDataError):  # a type code nibabel does not know
        return None
    return dtype if dtype.kind == "f" else None


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _nifti_pixdim(path: Path) -> list[float] | None:
    """pixdim[1..ndim] of a NIfTI file, or None if it is not NIfTI (or unreadable)."""
    try:
        with _open(path) as handle:
            layout = nifti_layout(handle.read(540))
    except (OSError, EOFError, zlib.error):
        return None
    return None if layout is None else layout.spacing


GZIP_MAGIC = b"\x1f\x8b"


def _drain(handle) -> None:
    """Read a file to its end in 1 MiB pieces, so that gzip checks its CRC and length trailer."""
    while handle.read(1 << 20):
        pass


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _corrupt(name: str, detail: str) -> str:
    """The one-line complaint about a damaged file (truncated, or bytes changed)."""
    return f"{name} is truncated or corrupt ({detail}); copy or export it again"


def _gzip_corrupt_message(name: str, exc: Exception) -> str:
    return _corrupt(name, f"its gzip stream is corrupt: {_reason(exc)}")


def gzip_stream_problem(path: Path, name: str) -> str | None:
    """A one-line complaint when a .gz file's stream is damaged (bad data, CRC or length), or None.

    Readers that stop after the bytes they need (ITK, nibabel) never reach the gzip trailer, so
    flipped bytes inside the stream give them wrong voxels without an error. A file that is not
    gzip at all (no magic number) is left to the caller's own "cannot read" message.
    """
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
    except OSError:
        return None  # unreadable: the caller's own message names the reason
    if magic != GZIP_MAGIC:
        return None
    try:
        with gzip.open(path, "rb") as handle:
            _drain(handle)
    except (EOFError, OSError, zlib.error) as exc:
        return _gzip_corrupt_message(name, exc)
    return None


def nifti_data_problem(path: Path, name: str, must_be_nifti: bool = False) -> str | None:
    """A one-line complaint about a single-file NIfTI's data block: truncated, corrupt, or NaN / infinity.

    SimpleITK reads a truncated NIfTI without error (the missing voxels become 0), reads a .nii.gz
    whose stream has flipped bytes without checking the gzip CRC (it stops reading at the last
    voxel, before the trailer), and silently replaces non-finite values; so the data block is
    checked in the file itself, reading a .nii.gz to its end: one more decompression, about 50 ms
    for a clinical sagittal volume. A file without a NIfTI header is left to the caller's reader
    (None), unless `must_be_nifti`.
    """
    try:
        with _open(path) as handle:
            layout = nifti_layout(handle.read(540))
            if layout is None:
                return _corrupt(name, "it has no NIfTI-1 or NIfTI-2 header") if must_be_nifti else None
            expected = layout.voxels * max(layout.bitpix, 8) // 8
            handle.seek(layout.offset)
            data = handle.read(expected)
            if path.name.lower().endswith(".gz") and len(data) == expected:
                _drain(handle)
    except gzip.BadGzipFile as exc:
        return _gzip_corrupt_message(name, exc)
    except (EOFError, OSError, zlib.error) as exc:
        return _corrupt(name, f"its data block cannot be read: {_reason(exc)}")
    if len(data) < expected:
        return _corrupt(name, f"its data block is incomplete: {len(data)} of {expected} bytes")
    return _nonfinite_problem(data, layout, name)


def _nonfinite_problem(data: bytes, layout: NiftiLayout, name: str) -> str | None:
    """The complaint about NaN or infinite voxels in a floating-point data block, or None."""
    if layout.float_dtype is None:
        return None
    whole = len(data) // layout.float_dtype.itemsize * layout.float_dtype.itemsize  # bitpix may disagree with the type
    values = np.frombuffer(data[:whole], dtype=layout.float_dtype)
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    return nonfinite_message(name, bad) if bad else None


def nonfinite_message(name: str, count: int) -> str:
    return (
        f"{name} has {count} NaN or infinite voxels; fix the conversion that produced it "
        "(or replace them, e.g. with 0) and try again"
    )


def _text_header(path: Path, limit: int = 65536) -> dict[str, str]:
    """Key -> value of a NRRD (``key: value``) or MetaImage (``Key = Value``) text header."""
    with open(path, "rb") as handle:
        raw = handle.read(limit)
    fields: dict[str, str] = {}
    for line in raw.split(b"\n"):
        text = line.decode("latin-1").strip()
        if not text and fields:
            break  # NRRD: a blank line ends the header
        for separator in (":=", ":", "="):
            if separator in text:
                key, value = text.split(separator, 1)
                fields.setdefault(key.strip().lower(), value.strip())
                break
        if text.lower().startswith("elementdatafile"):
            break  # MetaImage: the last header field
    return fields


def numbers(text: str) -> list[float]:
    values = []
    for token in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
        try:
            values.append(float(token))
        except ValueError:
            values.append(float("nan"))  # "none", "nan": not a spatial axis
    return values


def _nrrd_spacings(fields: dict[str, str]) -> list[float] | None:
    """Voxel sizes written in a NRRD header, or None when it gives none."""
    if "space directions" in fields:
        lengths = []
        for vector in fields["space directions"].split(")"):
            if "(" in vector:
                lengths.append(float(np.linalg.norm(numbers(vector.split("(", 1)[1]))))
        return lengths
    if "spacings" in fields:
        return [v for v in numbers(fields["spacings"]) if not np.isnan(v)]
    return None


def header_spacing_problem(path: Path) -> str | None:
    """A one-line complaint about the voxel spacing written in a file's header, or None."""
    name = path.name.lower()
    spacings: list[float] | None
    if name.endswith((".nii", ".nii.gz")):
        spacings = _nifti_pixdim(path)
        if spacings is None:
            return None  # not NIfTI after all: the reader will say so
        spacings = spacings[:3]
    elif name.endswith((".nrrd", ".nhdr")):
        spacings = _nrrd_spacings(_text_header(path))
    elif name.endswith((".mha", ".mhd")):
        fields = _text_header(path)
        value = fields.get("elementspacing") or fields.get("elementsize")
        spacings = numbers(value) if value else None
    else:
        return None
    if not spacings:
        return (
            f"{path.name} gives no voxel spacing in its header (a reader would assume 1 mm); "
            "re-export it with the real voxel size"
        )
    if any(not np.isfinite(s) or s <= 0 for s in spacings):
        shown = " x ".join(f"{s:g}" for s in spacings)
        return (
            f"{path.name} has an invalid voxel spacing ({shown} mm: zero, negative or not a number) in its header; "
            "re-export it with the real voxel size"
        )
    return None
