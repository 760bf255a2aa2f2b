"""Find the spinal cord in a scan with the cord locator: a mask on the scan's own array grid.

The mask is the locator's cord probability above one half, brought back to the scan's grid
(linear interpolation of the probability, then the threshold), keeping the largest connected
component and any other component of at least `KEEP_SHARE` of its size (a cord cut in two by a
tilted field of view, or by a lesion the locator did not call cord, is still one cord; small
islands elsewhere are not).

A mask is trusted (`plausible`) only when it runs along at least `MIN_LENGTH_SHARE` of the scan's
head-foot extent: on a sagittal spine scan the cord crosses nearly the whole field of view, and a
locator that finds only a short piece has not understood the scan (an unfamiliar contrast, a
field of view below the conus). Callers then segment the whole volume and say so, rather than crop
to a box that may miss the canal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from batseg.cord_locator.locator_file import LOCATOR_SUFFIX, load_locator, read_locator
from batseg.cord_locator.planes import from_planes_array, image_planes, pad_to_multiple
from batseg.resources import shipped_dir

LOCATOR_NAME = "cord-locator-synthetic-0.1.0"
KEEP_SHARE = 0.1
MIN_LENGTH_SHARE = 0.6
# Overrides the shipped locator file (tests, or a retrained locator).
LOCATOR_ENV = "BATSEG_CORD_LOCATOR"


def shipped_locator_path() -> Path:
    """The locator file batseg ships with (or the one BATSEG_CORD_LOCATOR names)."""
    override = os.environ.get(LOCATOR_ENV)
    return Path(override) if override else shipped_dir("Models") / f"{LOCATOR_NAME}{LOCATOR_SUFFIX}"


@dataclass(frozen=True)
class LocatedCord:
    """The locator's answer for one scan."""

    mask: np.ndarray  # bool, the scan's (z, y, x) array grid
    locator: str  # the locator's name and version, for reports
    length_share: float  # the mask's head-foot extent over the scan's

    @property
    def found(self) -> bool:
        return bool(self.mask.any())

    @property
    def plausible(self) -> bool:
        return self.found and self.length_share >= MIN_LENGTH_SHARE


@lru_cache(maxsize=2)
def cached_locator(path: str) -> tuple[Any, dict[str, Any]]:
    """The torch network and manifest of a locator file, loaded once per process."""
    return load_locator(path)


@lru_cache(maxsize=2)
def _cached_runner(path: str) -> tuple[Any, dict[str, Any]]:
    """(an ONNX Runtime session or None, the verified manifest) of a locator file."""
    from batseg.cord_locator.onnx_runner import onnx_session

    manifest, _ = read_locator(path)
    return onnx_session(Path(path), manifest), manifest


def keep_cord_components(mask: np.ndarray) -> np.ndarray:
    """The largest connected component and those of at least KEEP_SHARE of its size."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labelled.ravel())[1:]
    keep = np.flatnonzero(sizes >= KEEP_SHARE * sizes.max()) + 1
    return np.isin(labelled, keep)


def cord_probability_torch(network: Any, padded: np.ndarray) -> np.ndarray:
    """The torch network's cord probability on padded locator planes (n, rows, cols)."""
    import torch

    from batseg.cord_locator.network import cord_probability

    with torch.inference_mode():
        return cord_probability(network, torch.from_numpy(np.ascontiguousarray(padded))).numpy()


def locate_cord(image: sitk.Image, path: str | os.PathLike[str] | None = None) -> LocatedCord:
    """The spinal cord mask of `image` on its own array grid (module docstring)."""
    path = Path(path) if path is not None else shipped_locator_path()
    session, manifest = _cached_runner(str(path.resolve()))
    planes = image_planes(image)
    padded, (rows, cols) = pad_to_multiple(planes.planes)
    if session is not None:
        from batseg.cord_locator.onnx_runner import cord_probability_onnx

        prob = cord_probability_onnx(session, padded)
    else:
        prob = cord_probability_torch(cached_locator(str(path.resolve()))[0], padded)
    mask_pir = keep_cord_components(from_planes_array(prob[:, :rows, :cols], planes.model_shape) > 0.5)
    mask = np.ascontiguousarray(planes.mapping.to_input(mask_pir))
    name = f"{manifest.get('name', LOCATOR_NAME)} {manifest.get('version', '')}".strip()
    return LocatedCord(mask, name, length_share(mask_pir))


def length_share(mask_pir: np.ndarray) -> float:
    """The share of the PIR grid's head-foot rows (axis 1) between the mask's first and last row."""
    rows = np.flatnonzero(mask_pir.any(axis=(0, 2)))
    return 0.0 if rows.size == 0 else float(rows[-1] - rows[0] + 1) / mask_pir.shape[1]
