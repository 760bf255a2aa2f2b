"""The simulated MR acquisition: grid and header geometry, slab partial volume, coil bias,
k-space truncation, Rician noise and scanner scaling.

Decisions:
- Grid: sagittal slices. Index axes i -> posterior, j -> inferior, k -> right, i.e. direction
  columns (0,1,0), (0,0,-1), (-1,0,0) in LPS (determinant +1), times a small random rotation
  (up to 5 degrees about each axis) as an oblique scanner plan would write it. The anatomy is
  rendered in the grid's own frame, so image, label and cord mask share one grid and nothing
  is ever resampled; the anatomy's residual misalignment with the slices (tilt, lateral drift,
  axial rotation) is drawn in spine.py.
- Field of view: 160-240 mm (cervical), 240-300 (thoracic), 200-300 (lumbar) superior-inferior;
  160-260 mm anterior-posterior. Square pixels of 0.35-1.0 mm (a matrix of 256-512 is drawn,
  then the pixel is kept in range). 9-20 slices, spacing 3-4.5 mm, thickness 3-4.5 mm with
  an optional inter-slice gap of up to 10% of the spacing.
- Partial volume along left-right: every slab is the mean of an odd number of sub-slices (3 or
  5, about 1.2 mm apart) spread over the slice thickness (box slice profile). The label is the
  class covering the majority of the sub-samples of a voxel (>= 50%; odd counts: no ties).
- In-plane point spread: k-space is truncated (65-100% of the phase-encoding lines, 80-100% of
  the read-out samples, zero-filled to the matrix) with a cosine roll-off over the outer 10-40%
  (the scanner's filter), which gives the
  blur and Gibbs ringing of real images and the spatially correlated noise of zero-filled
  reconstructions.
- Noise: complex Gaussian added in k-space over the acquired region, magnitude image (Rician;
  Rayleigh in the air). SNR of the cord (its signal over the per-channel noise sigma) 8-30.
- Bias: a smooth multiplicative field (random low-frequency profiles along each axis, 5-25%)
  times the sensitivity of a posterior spine coil, which falls off anteriorly from the back.
  It is normalised to 1 at the canal so the drawn SNR is the cord's SNR.
- Scanner scaling: fat maps to 400-2500 counts, plus an offset of 0-20 counts; stored as int16
  (or float32 on request).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import scipy.fft
import SimpleITK as sitk

from batseg.phantoms.fields import smooth_profile

# Base direction (columns = index axes i, j, k in LPS): posterior, inferior, right.
BASE_DIRECTION = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
PIXEL_RANGE_MM = (0.35, 1.0)
SLICE_SPACING_RANGE_MM = (3.0, 4.5)
SLICES_RANGE = (9, 20)
FOV_SI_MM = {"cervical": (160.0, 240.0), "thoracic": (240.0, 300.0), "lumbar": (200.0, 300.0)}
FOV_AP_MM = (160.0, 260.0)
SUB_SLICE_MM = 1.2


@dataclass(frozen=True)
class Acquisition:
    """One case's acquisition parameters and geometry."""

    shape: tuple[int, int, int]  # SimpleITK size: (AP i, SI j, LR k)
    pixel_mm: float
    slice_spacing_mm: float
    slice_thickness_mm: float
    n_sub: int
    rotation_deg: tuple[float, float, float]
    direction: tuple[float, ...]
    origin: tuple[float, float, float]
    phase_axis: str
    phase_fraction: float
    read_fraction: float
    taper: float
    snr: float
    bias_amplitude: float
    coil_floor: float
    coil_length_mm: float
    fat_counts: float
    offset: float

    @property
    def fov_mm(self) -> tuple[float, float]:
        """(anterior-posterior, superior-inferior) extent in mm."""
        return self.shape[0] * self.pixel_mm, self.shape[1] * self.pixel_mm

    def grid_y(self) -> np.ndarray:
        """Posterior coordinate of each column i (grid frame, centred)."""
        n = self.shape[0]
        return (np.arange(n) - (n - 1) / 2) * self.pixel_mm

    def grid_z(self) -> np.ndarray:
        """Superior coordinate of each row j (grid frame, centred; row 0 is superior)."""
        n = self.shape[1]
        return ((n - 1) / 2 - np.arange(n)) * self.pixel_mm

    def slice_x(self, k: int) -> np.ndarray:
        """Left coordinates of the sub-slices of slice k (k increases to the right)."""
        centre = ((self.shape[2] - 1) / 2 - k) * self.slice_spacing_mm
        offsets = ((np.arange(self.n_sub) + 0.5) / self.n_sub - 0.5) * self.slice_thickness_mm
        return centre + offsets

    def meta(self) -> dict:
        out = asdict(self)
        out["fov_mm"] = [round(v, 2) for v in self.fov_mm]
        return out


def _rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_acquisition(rng: np.random.Generator, region: str, matrix: int | None = None,
                     n_slices: int | None = None) -> Acquisition:
    """Draw an acquisition. `matrix` (superior-inferior pixels) and `n_slices` override the
    draw; an explicit matrix may give pixels outside 0.35-1.0 mm (small test or preview cases)."""
    fov_si = rng.uniform(*FOV_SI_MM[region])
    fov_ap = float(np.clip(fov_si * rng.uniform(0.75, 1.0), *FOV_AP_MM))
    if matrix is None:
        drawn = int(rng.choice([256, 320, 384, 448, 512], p=[0.1, 0.2, 0.4, 0.2, 0.1]))
        pixel = float(np.clip(fov_si / drawn, *PIXEL_RANGE_MM))
        # Round the matrix towards the inside of the pixel range.
        matrix = int(np.clip(round(fov_si / pixel), np.ceil(fov_si / PIXEL_RANGE_MM[1]),
                             np.floor(fov_si / PIXEL_RANGE_MM[0])))
    pixel = fov_si / matrix
    ni = int(round(fov_ap / pixel))
    spacing = rng.uniform(*SLICE_SPACING_RANGE_MM)
    gap = rng.uniform(0.0, 0.1) if rng.random() < 0.5 else 0.0
    thickness = max(SLICE_SPACING_RANGE_MM[0], spacing / (1 + gap))
    n_sub = int(np.ceil(thickness / SUB_SLICE_MM)) | 1  # odd: no ties in the majority label
    nk = int(n_slices if n_slices is not None else rng.integers(SLICES_RANGE[0], SLICES_RANGE[1] + 1))
    angles = tuple(float(a) for a in rng.uniform(-5.0, 5.0, 3))
    rot = _rotation(angles)
    direction = rot @ BASE_DIRECTION
    centre = np.array([rng.uniform(-20, 20), rng.uniform(-60, 20), rng.uniform(-50, 50)])
    corner = np.array([(nk - 1) / 2 * spacing, -(ni - 1) / 2 * pixel, (matrix - 1) / 2 * pixel])
    origin = centre + rot @ corner
    return Acquisition(
        shape=(ni, matrix, nk), pixel_mm=float(pixel), slice_spacing_mm=float(spacing),
        slice_thickness_mm=float(thickness), n_sub=n_sub, rotation_deg=angles,
        direction=tuple(float(d) for d in direction.ravel()), origin=tuple(float(o) for o in origin),
        phase_axis=str(rng.choice(["SI", "AP"], p=[0.6, 0.4])),
        phase_fraction=float(rng.uniform(0.65, 1.0)), read_fraction=float(rng.uniform(0.8, 1.0)),
        taper=float(rng.uniform(0.1, 0.4)), snr=float(rng.uniform(8.0, 30.0)),
        bias_amplitude=float(rng.uniform(0.05, 0.25)), coil_floor=float(rng.uniform(0.25, 0.7)),
        coil_length_mm=float(rng.uniform(50.0, 140.0)), fat_counts=float(rng.uniform(400.0, 2500.0)),
        offset=float(rng.uniform(0.0, 20.0)))


# Acquisition fields a caller may set instead of drawing them (geometry excluded: the field of
# view, matrix and slices decide where the anatomy is).
OVERRIDABLE = ("phase_axis", "phase_fraction", "read_fraction", "taper", "snr", "bias_amplitude",
               "coil_floor", "coil_length_mm", "fat_counts", "offset")


def override(acq: Acquisition, values: dict) -> Acquisition:
    """The acquisition with some drawn fields replaced (see OVERRIDABLE)."""
    unknown = sorted(set(values) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"cannot override {unknown}; allowed: {OVERRIDABLE}")
    return replace(acq, **values)


def _window(n: int, fraction: float, taper: float) -> np.ndarray:
    """k-space weights along one axis (FFT order): 1 in the centre, cosine roll-off, 0 beyond."""
    f = np.abs(np.fft.fftfreq(n))
    edge = 0.5 * fraction
    flat = edge * (1 - taper)
    w = np.ones(n)
    roll = (f > flat) & (f <= edge)
    if taper > 0:
        w[roll] = 0.5 * (1 + np.cos(np.pi * (f[roll] - flat) / (edge - flat)))
    w[f > edge] = 0.0
    return w


def _bias(acq: Acquisition, rng: np.random.Generator, y_back: float, y_canal: float) -> np.ndarray:
    """Smooth multiplicative field [nk, nj, ni], 1 at the canal."""
    y, z = acq.grid_y(), acq.grid_z()
    x = np.array([acq.slice_x(k).mean() for k in range(acq.shape[2])])
    amp = acq.bias_amplitude
    by = smooth_profile(rng, y, amp, (150, 500))
    bz = smooth_profile(rng, z, amp, (150, 500))
    bx = smooth_profile(rng, x, amp, (150, 500))

    def coil(yy: np.ndarray | float) -> np.ndarray:
        depth = np.clip(y_back - np.asarray(yy), 0, None)
        return acq.coil_floor + (1 - acq.coil_floor) * np.exp(-depth / acq.coil_length_mm)

    fy = np.exp(by) * coil(y)
    norm = float(np.interp(y_canal, y, fy)) * float(np.exp(bz).mean())
    field = np.exp(bx)[:, None, None] * np.exp(bz)[None, :, None] * (fy / norm)[None, None, :]
    return field.astype(np.float32)


def simulate(acq: Acquisition, signal: np.ndarray, cord_signal: float, rng: np.random.Generator,
             y_back: float, y_canal: float) -> np.ndarray:
    """Magnitude image in scanner counts (float32 [nk, nj, ni]) from the slab-averaged signal."""
    s = signal * _bias(acq, rng, y_back, y_canal)
    nk, nj, ni = s.shape
    read_fraction, phase_fraction = acq.read_fraction, acq.phase_fraction
    frac_j, frac_i = (phase_fraction, read_fraction) if acq.phase_axis == "SI" else (read_fraction, phase_fraction)
    w = np.outer(_window(nj, frac_j, acq.taper), _window(ni, frac_i, acq.taper)).astype(np.float32)
    sigma = cord_signal / acq.snr / np.sqrt(np.mean(w ** 2))
    k = scipy.fft.fft2(s, axes=(1, 2), norm="ortho", workers=1)
    noise = rng.standard_normal((2, nk, nj, ni), dtype=np.float32)
    k += (noise[0] + 1j * noise[1]) * np.float32(sigma)
    k *= w
    image = np.abs(scipy.fft.ifft2(k, axes=(1, 2), norm="ortho", workers=1)).astype(np.float32)
    return image * np.float32(acq.fat_counts) + np.float32(acq.offset)


def to_image(array: np.ndarray, acq: Acquisition) -> sitk.Image:
    """A SimpleITK image [nk, nj, ni] -> size (ni, nj, nk) with the acquisition's geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((acq.pixel_mm, acq.pixel_mm, acq.slice_spacing_mm))
    image.SetOrigin(acq.origin)
    image.SetDirection(acq.direction)
    return image
