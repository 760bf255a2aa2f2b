"""Find the spinal cord in a scan with the cord locator: a mask on the scan's own array grid.

The mask is the locator's cord probability above one half, brought back to the scan's grid
(linear interpolation of the probability, then the threshold), keeping the largest connected
component and any other component of at least `KEEP_SHARE` of its size (a cord cut in two by a
tilted field of view, or by a lesion the locator did not call cord, is still one cord; small
islands elsewhere are not). An empty mask means no cord was found: callers then segment the
whole volume and say so.
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

from batseg.cord_locator.locator_file import LOCATOR_SUFFIX, load_locator
from batseg.cord_locator.planes import from_planes_array, image_planes, pad_to_multiple
from batseg.resources import shipped_dir

LOCATOR_NAME = "cord-locator-synthetic-0.1.0"
KEEP_SHARE = 0.1
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

    @property
    def found(self) -> bool:
        return bool(self.mask.any())


@lru_cache(maxsize=2)
def _cached(path: str) -> tuple[Any, dict[str, Any]]:
    return load_locator(path)


def keep_cord_components(mask: np.ndarray) -> np.ndarray:
    """The largest connected component and those of at least KEEP_SHARE of its size."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labelled.ravel())[1:]
    keep = np.flatnonzero(sizes >= KEEP_SHARE * sizes.max()) + 1
    return np.isin(labelled, keep)


def cord_probability_pir(network: Any, planes: np.ndarray) -> np.ndarray:
    """The network's cord probability on locator planes (n, rows, cols)."""
    import torch

    from batseg.cord_locator.network import cord_probability

    padded, (rows, cols) = pad_to_multiple(planes)
    with torch.inference_mode():
        prob = cord_probability(network, torch.from_numpy(np.ascontiguousarray(padded)))
    return prob.numpy()[:, :rows, :cols]


def locate_cord(image: sitk.Image, path: str | os.PathLike[str] | None = None) -> LocatedCord:
    """The spinal cord mask of `image` on its own array grid (module docstring)."""
    path = Path(path) if path is not None else shipped_locator_path()
    network, manifest = _cached(str(path.resolve()))
    planes = image_planes(image)
    prob = cord_probability_pir(network, planes.planes)
    mask_pir = keep_cord_components(from_planes_array(prob, planes.model_shape) > 0.5)
    mask = np.ascontiguousarray(planes.mapping.to_input(mask_pir))
    return LocatedCord(mask, f"{manifest.get('name', LOCATOR_NAME)} {manifest.get('version', '')}".strip())
