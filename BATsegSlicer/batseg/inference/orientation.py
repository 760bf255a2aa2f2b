"""Reorientation between an input image's voxel axes and the model's, and the acquisition-plane check.

Model grid convention: the network sees arrays (z, y, x) = (slices across left-right,
superior -> inferior, anterior -> posterior), i.e. a SimpleITK image in orientation "PIR"
(index i toward posterior, j toward inferior, k toward right; ITK `DICOMOrient` code, which
names the direction each index axis points *to*). The phantom generator writes its sagittal
volumes that way (plus small rotations), and nnU-Net, which trains on them, never reorients,
so inference must hand the network the same axis arrangement.

The model's axes come from its manifest's `input.orientation` (`model_axes`): an orientation
code string, or the packager's nnU-Net description ``{"convention": "nnunet",
"transpose_forward": [...], ...}``, optionally with a ``"code"``. nnU-Net itself does not
reorient: it transposes SimpleITK's array by `transpose_forward` (coarse axis first). Decision:
the image is first reoriented to the code (default "PIR", the orientation the phantoms are
written in, so for such images this is the identity and inference equals nnU-Net's), then
transposed by `transpose_forward`; images stored in any other orientation (RAS, LPS, axial
slabs, ...) then still reach the network with the training data's axis arrangement.

Reorientation here is only a permutation and flips of the voxel axes (what `DICOMOrient` does),
never an interpolation: an oblique acquisition keeps its small rotation in the direction
matrix, and the voxels keep their values. `AxisMapping` applies the same permutation to arrays
in both directions, so the prediction returns to the input's exact voxel grid by transposing
back, with no resampling and no floating-point drift in the geometry.

Decision (which input axis becomes which model axis): the input axis whose direction cosine is
closest to a model axis's direction (largest |cosine|) is assigned to it, the largest match
first. For an axis-aligned image this is exact; for an oblique one it is the nearest
orthogonal orientation, as `DICOMOrient` chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

MODEL_ORIENTATION = "PIR"

# Unit vector (LPS physical coordinates) each orientation letter points to.
LETTER_VECTORS: dict[str, tuple[float, float, float]] = {
    "L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0), "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0), "I": (0.0, 0.0, -1.0),
}
PLANE_OF_NORMAL: dict[int, str] = {0: "sagittal", 1: "coronal", 2: "axial"}  # normal along LPS x, y, z
# A slice axis exists when the largest spacing exceeds the smallest by this factor.
SLICE_ANISOTROPY = 1.5


def direction_matrix(image: sitk.Image) -> np.ndarray:
    """The 3x3 direction matrix: column c is the LPS direction of index axis c (i, j, k)."""
    return np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)


def check_orientation_code(code: str) -> str:
    """The code in upper case; ValueError unless it names one of L/R, P/A, S/I each."""
    code = code.upper()
    axes = sorted("LPS"["LRPASI".index(c) // 2] for c in code if c in "LRPASI")
    if len(code) != 3 or axes != ["L", "P", "S"]:
        raise ValueError(f"orientation code {code!r} must name one of L/R, A/P, S/I each, e.g. 'PIR'")
    return code


@dataclass(frozen=True)
class AxisMapping:
    """Array-axis permutation and flips from an input's (z, y, x) order to the model's.

    `order[a]` is the input array axis that becomes model array axis `a`; `flip[a]` says whether
    model array axis `a` runs opposite to that input axis. Arrays may carry leading axes
    (channels); the last three are spatial.
    """

    order: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    def to_model(self, array: np.ndarray) -> np.ndarray:
        lead = array.ndim - 3
        moved = np.transpose(array, tuple(range(lead)) + tuple(lead + a for a in self.order))
        flips = tuple(lead + a for a in range(3) if self.flip[a])
        return np.flip(moved, flips) if flips else moved

    def to_input(self, array: np.ndarray) -> np.ndarray:
        lead = array.ndim - 3
        flips = tuple(lead + a for a in range(3) if self.flip[a])
        unflipped = np.flip(array, flips) if flips else array
        inverse = np.argsort(self.order)
        return np.transpose(unflipped, tuple(range(lead)) + tuple(lead + int(a) for a in inverse))

    def then_transpose(self, transpose: Sequence[int]) -> "AxisMapping":
        """This mapping followed by a transposition of the model array's axes (nnU-Net's transpose_forward)."""
        t = [int(a) for a in transpose]
        return AxisMapping(tuple(self.order[a] for a in t), tuple(self.flip[a] for a in t))  # type: ignore[arg-type]

    def spacing_to_model(self, spacing_zyx: tuple[float, float, float]) -> tuple[float, float, float]:
        """An (z, y, x) per-axis quantity of the input in model array order."""
        return tuple(float(spacing_zyx[a]) for a in self.order)  # type: ignore[return-value]


def axis_mapping(direction: np.ndarray, target: str = MODEL_ORIENTATION) -> AxisMapping:
    """The mapping that brings an image with `direction` (3x3, columns = i, j, k) to `target`."""
    target = check_orientation_code(target)
    wanted = np.array([LETTER_VECTORS[c] for c in target]).T  # column t = wanted direction of index axis t
    cosines = direction.T @ wanted  # [s, t] = cosine between input index axis s and target index axis t
    source_of = [-1, -1, -1]
    free_s, free_t = {0, 1, 2}, {0, 1, 2}
    for flat in np.argsort(-np.abs(cosines), axis=None, kind="stable"):
        s, t = divmod(int(flat), 3)
        if s in free_s and t in free_t:
            source_of[t] = s
            free_s.discard(s)
            free_t.discard(t)
    # Index axis t is array axis 2 - t (SimpleITK arrays are (k, j, i)).
    order = tuple(2 - source_of[2 - a] for a in range(3))
    flip = tuple(bool(cosines[source_of[2 - a], 2 - a] < 0) for a in range(3))
    return AxisMapping(order, flip)  # type: ignore[arg-type]


def model_axes(setting: Any) -> tuple[str, tuple[int, int, int]]:
    """(orientation code, transpose_forward) from a manifest's `input.orientation` (module docstring)."""
    if setting is None:
        return MODEL_ORIENTATION, (0, 1, 2)
    if isinstance(setting, str):
        return check_orientation_code(setting), (0, 1, 2)
    if isinstance(setting, dict):
        code = check_orientation_code(str(setting.get("code", MODEL_ORIENTATION)))
        transpose = tuple(int(a) for a in setting.get("transpose_forward", (0, 1, 2)))
        if sorted(transpose) != [0, 1, 2]:
            raise ValueError(f"transpose_forward {list(transpose)} is not a permutation of 0, 1, 2")
        return code, transpose  # type: ignore[return-value]
    raise ValueError(f"orientation {setting!r} is neither a code nor an nnU-Net description")


@dataclass(frozen=True)
class Acquisition:
    """The plane the slices were acquired in, inferred from spacing and direction."""

    plane: str  # "sagittal", "coronal", "axial", or "isotropic" (no clear slice axis)
    slice_spacing: float  # mm, the largest spacing
    obliquity_degrees: float  # angle between the slice normal and the nearest LPS axis


def acquisition(image: sitk.Image) -> Acquisition:
    """The acquisition plane: the slice axis is the index axis with the largest spacing."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    axis = int(np.argmax(spacing))
    normal = direction_matrix(image)[:, axis]
    dominant = int(np.argmax(np.abs(normal)))
    angle = float(np.degrees(np.arccos(min(1.0, abs(normal[dominant]) / np.linalg.norm(normal)))))
    if spacing.max() < SLICE_ANISOTROPY * spacing.min():
        return Acquisition("isotropic", float(spacing.max()), angle)
    return Acquisition(PLANE_OF_NORMAL[dominant], float(spacing.max()), angle)


def model_plane(target: str, target_spacing_zyx: tuple[float, float, float]) -> str:
    """The plane the model's slices lie in: its coarsest array axis's letter gives the normal."""
    letter = check_orientation_code(target)[2 - int(np.argmax(target_spacing_zyx))]
    return PLANE_OF_NORMAL[int(np.argmax(np.abs(LETTER_VECTORS[letter])))]


def orientation_warning(image: sitk.Image, target: str, target_spacing_zyx: tuple[float, float, float]) -> str | None:
    """A warning when the image's slices are not in the plane the model was trained on."""
    found = acquisition(image)
    expected = model_plane(target, target_spacing_zyx)
    if found.plane in ("isotropic", expected):
        return None
    return (
        f"the image has {found.plane} slices ({found.slice_spacing:.2f} mm apart) but the model was trained on "
        f"{expected} slices; it is resampled to the model's grid, but expect poorer results"
    )
