"""Elongated implicit shapes along the spinal axis ("tubes"): cord, dural sac, lesions, cysts.

Every structure inside the canal is, at each position L along the axis, an ellipse in the
cross-section plane (u posterior, v left): centre (cu, cv), semi-axes (ra, rb), optionally
rotated by psi. The profiles are tabulated on a 1D grid of L, so deforming the cord, growing a
fusiform tumour or adding a polar cyst only edits 1D arrays. Evaluation happens in two steps:
`Tube.section` interpolates the profiles once per case on the 2D (L, u) map of the sagittal
plane, restricted to the tube's bounding box; `TubeSection.distance` then costs a handful of
array operations per sub-slice.

The signed distance is the usual ellipse approximation d = (sqrt(q) - 1) * min(ra, rb) with q
the normalised radius; it is exact for circles, close to the boundary for ellipses, and is only
used to threshold (label = d < 0) and to blend intensities over a margin, where a first-order
distance is enough.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

FAR = np.float32(1e3)  # "distance" reported where a tube is absent


@dataclass(frozen=True)
class Tube:
    """Ellipse profile along the axis; ra = 0 where the shape is absent."""

    L: np.ndarray
    cu: np.ndarray
    cv: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    psi: float = 0.0

    @classmethod
    def fusiform(cls, L0: float, half_length: float, cu: float, cv: float, ra: float, rb: float,
                 power: float = 0.5, psi: float = 0.0, step: float = 0.25) -> "Tube":
        """Radius R * (1 - ((L - L0) / half_length)^2)^power: power 0.5 is an ellipsoid,
        smaller powers are blunter, larger ones more spindle-shaped."""
        n = max(int(np.ceil(2 * half_length / step)) + 3, 5)
        L = np.linspace(L0 - half_length - step, L0 + half_length + step, n)
        shape = np.clip(1 - ((L - L0) / half_length) ** 2, 0, None) ** power
        ones = np.ones_like(L)
        return cls(L, cu * ones, cv * ones, ra * shape, rb * shape, psi)

    def extent(self) -> tuple[float, float]:
        """First and last L where the shape is present."""
        present = np.nonzero(self.ra > 0)[0]
        if present.size == 0:
            return (0.0, 0.0)
        return float(self.L[present[0]]), float(self.L[present[-1]])

    def is_empty(self) -> bool:
        return not bool(np.any(self.ra > 0))

    def radius_bound(self) -> float:
        return float(max(self.ra.max(initial=0), self.rb.max(initial=0)))

    def shifted(self, du: float = 0.0, dv: float = 0.0) -> "Tube":
        return replace(self, cu=self.cu + du, cv=self.cv + dv)

    def at(self, L: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cu, cv, ra, rb) interpolated at positions L (radii 0 outside the table)."""
        return (np.interp(L, self.L, self.cu), np.interp(L, self.L, self.cv),
                np.interp(L, self.L, self.ra, left=0.0, right=0.0),
                np.interp(L, self.L, self.rb, left=0.0, right=0.0))

    def section(self, L2d: np.ndarray, u2d: np.ndarray, margin: float) -> "TubeSection | None":
        """The tube sampled on the sagittal (L, u) map, cropped to its bounding box + margin."""
        if self.is_empty():
            return None
        L0, L1 = self.extent()
        r = self.radius_bound()
        umin = float(self.cu.min() - r - margin)
        umax = float(self.cu.max() + r + margin)
        near = (L2d >= L0 - margin) & (L2d <= L1 + margin) & (u2d >= umin) & (u2d <= umax)
        rows = np.nonzero(near.any(axis=1))[0]
        if rows.size == 0:
            return None
        cols = np.nonzero(near.any(axis=0))[0]
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        cu, cv, ra, rb = (a.astype(np.float32) for a in self.at(L2d[box]))
        return TubeSection(box, cu, cv, ra, rb, self.psi)


@dataclass(frozen=True)
class TubeSection:
    """A tube's profiles on a 2D box of the sagittal plane, ready for per-sub-slice evaluation."""

    box: tuple[slice, slice]
    cu: np.ndarray
    cv: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    psi: float

    def distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) at points (u, v) of the box."""
        du = u - self.cu
        dv = v - self.cv
        if self.psi:
            c, s = np.float32(np.cos(self.psi)), np.float32(np.sin(self.psi))
            du, dv = du * c + dv * s, dv * c - du * s
        present = self.ra > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            q = (du / self.ra) ** 2 + (dv / self.rb) ** 2
            d = (np.sqrt(q) - 1) * np.minimum(self.ra, self.rb)
        return np.where(present, d, FAR)
