"""Writing small DICOM MR series with SimpleITK for the input tests (generated, never downloaded)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_dicom_series(
    image: sitk.Image,
    folder: Path,
    series_uid: str = "1.2.826.0.1.3680043.2.1125.1.1",
    description: str = "T1 SAG POST GD",
    first_instance: int = 1,
    skip: tuple[int, ...] = (),
    with_pixel_spacing: bool = True,
    extra_tags: dict[str, str] | None = None,
) -> Path:
    """One file per slice of a 3-D int16 image, with position, orientation and series tags.

    `extra_tags` adds tags ("gggg|eeee": value) to every slice (e.g. EchoTime 0018|0081).
    `skip` leaves slices out (to make a series with a gap); `with_pixel_spacing=False` removes
    PixelSpacing (0028,0030) after writing.
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    today = time.strftime("%Y%m%d")
    shared = {
        "0008|0060": "MR",
        "0008|0020": today,
        "0008|0031": "120000",
        "0010|0010": "PHANTOM^TEST",
        "0010|0020": "TEST001",
        "0020|000d": series_uid + ".0",
        "0020|000e": series_uid,
        "0008|103e": description,
        "0020|0037": "\\".join(f"{v:.9f}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])),
        **(extra_tags or {}),
    }
    for k in range(image.GetDepth()):
        if k in skip:
            continue
        plane = image[:, :, k]
        for tag, value in shared.items():
            plane.SetMetaData(tag, value)
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        plane.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in position))
        plane.SetMetaData("0020|0013", str(first_instance + k))
        plane.SetMetaData("0008|0018", f"{series_uid}.{first_instance + k}")
        path = folder / f"IM{first_instance + k:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(plane)
        if not with_pixel_spacing:
            _remove_pixel_spacing(path)
    return folder


def _remove_pixel_spacing(path: Path) -> None:
    """Move the PixelSpacing element to a private group (0028,0030 -> 0029,0030), little-endian tags."""
    data = bytearray(path.read_bytes())
    marker = bytes([0x28, 0x00, 0x30, 0x00])
    index = data.find(marker, 132)  # after the preamble and "DICM"
    if index < 0:
        raise AssertionError(f"{path} has no PixelSpacing element to remove")
    data[index: index + 2] = bytes([0x29, 0x00])  # a private group: GDCM no longer sees PixelSpacing
    path.write_bytes(bytes(data))


def int16_image(array: np.ndarray, spacing, direction, origin=(10.0, -20.0, 30.0)) -> sitk.Image:
    """An int16 image with the given geometry (array in SimpleITK's (k, j, i) order)."""
    image = sitk.GetImageFromArray(np.asarray(array).astype(np.int16))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in np.asarray(direction, dtype=float).ravel()))
    image.SetOrigin(origin)
    return image
