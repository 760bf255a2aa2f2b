"""What image files say about themselves, read without SimpleITK's help where it would hide a problem.

SimpleITK (ITK) smooths over several header defects: a NRRD or MetaImage header without a
spacing becomes 1 mm, a negative NIfTI pixdim becomes positive, NaN and infinite voxels in a
NIfTI file are replaced, a truncated NIfTI is read with zeros for the missing voxels, and a
.nii.gz whose compressed stream is damaged is read without its gzip CRC being checked. The
functions here read the headers and data blocks themselves and describe such a problem in one
line (or return None), so that `batseg.io` can refuse the file. `quiet_itk` silences ITK's own
messages during reads, so that the one-line error is all the user sees.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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

    endian: str  # "<" or ">"
    dims: tuple[int, ...]  # dim[0..7]
    datatype: int
    bitpix: int
    offset: int  # vox_offset
    pixdim: tuple[float, ...]  # pixdim[0..7]

    @property
    def voxels(self) -> int:
        return int(np.prod([max(1, d) for d in self.dims[1 : 1 + max(1, min(self.dims[0], 7))]], dtype=np.int64))

    @property
    def spacing(self) -> list[float]:
        """pixdim[1..ndim]: the voxel sizes along the stored axes."""
        return list(self.pixdim[1 : 1 + max(0, min(self.dims[0], 7))])


def nifti_layout(header: bytes) -> NiftiLayout | None:
    """The layout of a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header, or None if it is not NIfTI."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            return NiftiLayout(
                endian, struct.unpack(endian + "8h", header[40:56]), *struct.unpack(endian + "2h", header[70:74]),
                int(struct.unpack(endian + "f", header[108:112])[0]), struct.unpack(endian + "8f", header[76:108]),
            )
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            return NiftiLayout(
                endian, struct.unpack(endian + "8q", header[16:80]), *struct.unpack(endian + "2h", header[12:16]),
                int(struct.unpack(endian + "q", header[168:176])[0]), struct.unpack(endian + "8d", header[104:168]),
            )
    return None


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

# NIfTI float data types (code: numpy type): only these can hold NaN or infinity.
_NIFTI_FLOATS = {16: "f4", 64: "f8"}


def _drain(handle) -> None:
    """Read a file to its end in 1 MiB pieces, so that gzip checks its CRC and length trailer."""
    while handle.read(1 << 20):
        pass


def _gzip_corrupt_message(name: str, exc: Exception) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"{name}: the gzip stream is corrupt ({reason}); copy or export the file again"


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


def nifti_data_problem(path: Path, name: str) -> str | None:
    """A one-line complaint about a single-file NIfTI's data block: truncated, corrupt, or NaN / infinity.

    SimpleITK reads a truncated NIfTI without error (the missing voxels become 0), reads a .nii.gz
    whose stream has flipped bytes without checking the gzip CRC (it stops reading at the last
    voxel, before the trailer), and silently replaces non-finite values; so the data block is
    checked in the file itself, reading a .nii.gz to its end: one more decompression, about 50 ms
    for a clinical sagittal volume.
    """
    compressed = path.name.lower().endswith(".gz")
    try:
        with _open(path) as handle:
            layout = nifti_layout(handle.read(540))
            if layout is None:
                return None
            expected = layout.voxels * max(layout.bitpix, 8) // 8
            handle.seek(layout.offset)
            data = handle.read(expected)
            if compressed and len(data) == expected:
                _drain(handle)
    except gzip.BadGzipFile as exc:
        return _gzip_corrupt_message(name, exc)
    except (EOFError, OSError, zlib.error):
        return f"{name}: the file is truncated or corrupt (its data block cannot be read); copy or export it again"
    if len(data) < expected:
        return f"{name}: the file is truncated (its data block is incomplete); copy or export it again"
    if layout.datatype in _NIFTI_FLOATS:
        values = np.frombuffer(data, dtype=np.dtype(layout.endian + _NIFTI_FLOATS[layout.datatype]))
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            return nonfinite_message(name, bad)
    return None


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
