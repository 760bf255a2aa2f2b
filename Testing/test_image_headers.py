"""One NIfTI reader (issue 20, item 8): `batseg.image_headers` decodes NIfTI-1 and NIfTI-2 headers
with nibabel, as stored (nibabel's own checks would make a negative pixdim positive), and its
`nifti_data_problem` is the one check of a data block: input images (`batseg.io`) and label
files (`batseg evaluate`) get the same verdict on a truncated, corrupt or NaN-holding file.

Files are built here from nibabel's header objects (no byte offsets written by hand), in both
byte orders and both NIfTI versions.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel
import numpy as np
import pytest

from batseg.errors import BATsegError, InputImageError
from batseg.evaluation import check_nifti_complete, read_label_file
from batseg.image_headers import header_spacing_problem, nifti_data_problem, nifti_layout
from batseg.io import find_cases, read_image

KINDS = {"NIfTI-1": nibabel.Nifti1Header, "NIfTI-2": nibabel.Nifti2Header}


def nifti_bytes(kind: type, endian: str, data: np.ndarray, pixdim=(0.5, 0.6, 3.6)) -> bytes:
    """A single-file NIfTI of `data` whose header says exactly what it is given (pixdim as is)."""
    header = kind(endianness=endian)
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header["pixdim"][1:4] = pixdim
    header["vox_offset"] = header.single_vox_offset
    padding = b"\0" * (header.single_vox_offset - header.sizeof_hdr)
    return header.binaryblock + padding + data.astype(header.get_data_dtype()).tobytes(order="F")


def write(path: Path, raw: bytes) -> Path:
    path.write_bytes(gzip.compress(raw, mtime=0) if path.name.endswith(".gz") else raw)
    return path


def volume(dtype: str = "int16") -> np.ndarray:
    return np.arange(6 * 20 * 20).reshape(20, 20, 6).astype(dtype) % 50 + 1


@pytest.mark.parametrize("endian", "<>")
@pytest.mark.parametrize("version", list(KINDS))
def test_headers_are_read_as_stored_in_both_versions_and_byte_orders(version: str, endian: str, tmp_path: Path) -> None:
    raw = nifti_bytes(KINDS[version], endian, volume("float32"), pixdim=(0.5, -0.5, 3.6))
    layout = nifti_layout(raw[:540])
    assert layout is not None and layout.dims[:4] == (3, 20, 20, 6)
    assert layout.spacing == [0.5, -0.5, pytest.approx(3.6)]  # not made positive, as nibabel's checks would
    assert layout.offset == KINDS[version].single_vox_offset and layout.float_dtype == np.dtype(endian + "f4")
    problem = header_spacing_problem(write(tmp_path / "negative.nii.gz", raw))
    assert problem is not None and "invalid voxel spacing (0.5 x -0.5 x 3.6 mm" in problem


def test_a_file_that_is_not_nifti_has_no_layout() -> None:
    assert nifti_layout(b"this is not a NIfTI header" * 30) is None
    assert nifti_layout(b"") is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("endian", "<>")
@pytest.mark.parametrize("version", list(KINDS))
def test_nan_is_found_in_every_float_type_and_byte_order(version: str, endian: str, dtype: str, tmp_path: Path) -> None:
    data = volume(dtype)
    data[3, 4, 5] = np.nan
    path = write(tmp_path / "nan.nii.gz", nifti_bytes(KINDS[version], endian, data))
    assert "has 1 NaN or infinite voxels" in nifti_data_problem(path, "nan.nii.gz")
    assert nifti_data_problem(write(tmp_path / "intact.nii", nifti_bytes(KINDS[version], endian, volume(dtype))), "x") is None


@pytest.mark.parametrize("version", list(KINDS))
def test_a_truncated_data_block_is_measured(version: str, tmp_path: Path) -> None:
    raw = nifti_bytes(KINDS[version], "<", volume("int16"))
    path = write(tmp_path / "short.nii", raw[:-100])
    expected = 6 * 20 * 20 * 2
    assert nifti_data_problem(path, "short.nii") == (
        f"short.nii is truncated or corrupt (its data block is incomplete: {expected - 100} of {expected} bytes); "
        "copy or export it again")


def _damaged(kind: str, folder: Path) -> Path:
    """A label-like file damaged in one of the ways ITK reads without complaint."""
    raw = nifti_bytes(nibabel.Nifti1Header, "<", volume("float32" if kind == "NaN" else "int16"))
    if kind == "truncated":
        return write(folder / "truncated.nii", raw[: len(raw) // 2])
    if kind == "NaN":
        data = volume("float32")
        data[1, 1, 1] = np.nan
        return write(folder / "nan.nii.gz", nifti_bytes(nibabel.Nifti1Header, "<", data))
    stream = bytearray(gzip.compress(raw, compresslevel=0, mtime=0))  # stored blocks: only the CRC tells
    stream[len(stream) // 2] ^= 0xFF
    path = folder / "flipped.nii.gz"
    path.write_bytes(bytes(stream))
    return path


@pytest.mark.parametrize("kind", ["truncated", "gzip flipped", "NaN"])
def test_evaluate_and_predict_give_the_same_verdict(kind: str, tmp_path: Path) -> None:
    path = _damaged(kind, tmp_path)
    with pytest.raises(BATsegError) as label_error:
        read_label_file(path)
    assert str(label_error.value) == nifti_data_problem(path, f"label file {path}")
    with pytest.raises(InputImageError) as input_error:
        read_image(find_cases(path)[0])
    # The same words after the name (an input is named by its case, or by its file name where
    # ITK itself fails on the damaged stream).
    said_for_label = str(label_error.value).removeprefix(f"label file {path}")
    assert said_for_label.startswith((" is truncated or corrupt (", " has 1 NaN"))
    assert str(input_error.value).endswith(said_for_label)


def test_a_label_file_without_a_nifti_header_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "garbage.nii", b"this is not a NIfTI file" * 40)
    assert nifti_data_problem(path, path.name) is None  # an input image: left to the reader's own message
    with pytest.raises(BATsegError, match=r"^label file .*garbage\.nii is truncated or corrupt \(it has no NIfTI-1"):
        check_nifti_complete(path)
