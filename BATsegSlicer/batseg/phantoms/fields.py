"""Smooth random fields: tissue and lesion texture, smooth anatomical variation.

Two kinds, both deterministic given the generator:
- `FourierField` / `smooth_profile`: a sum of a few random plane waves, evaluated analytically
  at any position (smooth 1D variation of anatomical profiles along the spine and of the bias
  field along each image axis);
- `texture_volume`: Gaussian-filtered white noise on the voxel grid (tissue texture, tumour
  heterogeneity, viscera; computed once per case on the acquisition grid, or a coarser one, and
  shared by the sub-slices of a slab). Plane-wave sums are not used for textures: with few
  waves they look striped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class FourierField:
    """f(p) = sum_w a_w cos(k_w . p + phi_w), normalised to unit standard deviation."""

    wavevectors: np.ndarray  # [W, D] rad/mm
    phases: np.ndarray  # [W]
    amplitudes: np.ndarray  # [W]

    def __call__(self, *coords: np.ndarray) -> np.ndarray:
        out = np.zeros(np.broadcast_shapes(*(np.shape(c) for c in coords)), np.float32)
        for k, phi, a in zip(self.wavevectors, self.phases, self.amplitudes):
            arg = phi + sum(kd * c for kd, c in zip(k, coords))
            out += a * np.cos(arg)
        return out


def fourier_field(rng: np.random.Generator, dims: int, n_waves: int,
                  wavelength_mm: tuple[float, float]) -> FourierField:
    """A random smooth field in `dims` dimensions with wavelengths in the given range."""
    directions = rng.normal(size=(n_waves, dims))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(*wavelength_mm, size=n_waves)
    wavevectors = directions * (2 * np.pi / wavelengths)[:, None]
    phases = rng.uniform(0, 2 * np.pi, n_waves)
    amplitudes = rng.uniform(0.5, 1.0, n_waves)
    # A sum of cosines with random phases has variance sum(a^2)/2.
    amplitudes = amplitudes / np.sqrt(np.sum(amplitudes ** 2) / 2)
    return FourierField(wavevectors.astype(np.float32), phases.astype(np.float32),
                        amplitudes.astype(np.float32))


def smooth_profile(rng: np.random.Generator, positions: np.ndarray, amplitude: float,
                   wavelength_mm: tuple[float, float], n_waves: int = 3) -> np.ndarray:
    """A smooth 1D random profile (zero mean, given amplitude) at `positions` (mm)."""
    if amplitude == 0:
        return np.zeros_like(positions, dtype=np.float64)
    field = fourier_field(rng, 1, n_waves, wavelength_mm)
    return amplitude * field(positions).astype(np.float64)


def texture_volume(rng: np.random.Generator, shape: tuple[int, int, int],
                   sigma_px: tuple[float, float, float]) -> np.ndarray:
    """Gaussian-filtered white noise (float32, zero mean, unit standard deviation)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    smooth = ndimage.gaussian_filter(noise, sigma_px, mode="wrap", truncate=3.0)
    std = float(smooth.std())
    return smooth / std if std > 0 else smooth
