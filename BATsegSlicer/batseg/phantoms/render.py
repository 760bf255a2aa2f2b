"""Renders one case on the acquisition grid: fine sub-slices -> slab signal, label, masks.

For each slice, the anatomy and the lesions are painted on `n_sub` sub-slices spread over the
slice thickness; the signal is their mean (partial volume along left-right), the label of a
voxel is the tumour class covering the majority of its sub-samples, the cord and dural-sac
masks likewise. Lesion components are blended into the tissue signal with their margin ramp
(sharp for most, several mm for astrocytomas); the label uses the boundary itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from batseg.phantoms import tissues as T
from batseg.phantoms.acquisition import Acquisition
from batseg.phantoms.anatomy import AnatomyPainter, SubSlice, make_frame
from batseg.phantoms.fields import texture_volume
from batseg.phantoms.shapes import Tube, TubeSection
from batseg.phantoms.spine import Spine
from batseg.phantoms.tissues import TissueSignal
from batseg.phantoms.tumours import ROLE_ORDER, Component, Lesion

FINE_TEXTURE_MM = 0.9
COARSE_TEXTURE_MM = 7.0
LESION_TEXTURE_MM = 2.5  # heterogeneous enhancement of ependymomas and (less) other tumours
# Coarse texture amplitude per tissue (relative); the fine one is in the case's TissueSignal.
_COARSE = {T.MUSCLE: 0.12, T.MARROW: 0.15, T.FAT: 0.03, T.EPIDURAL_FAT: 0.03, T.DISC: 0.06, T.SKIN: 0.05,
           T.INTERSPINOUS: 0.2, T.ARCH: 0.1}
ORGAN_MM = 12.0
# Viscera in front of the spine: a smooth random field cut into dark (air, fast blood, fluid),
# intermediate (organ walls, muscle, myocardium) and bright (mediastinal, mesenteric fat)
# regions, per region: (dark below, bright above, dark, intermediate, bright signal).
_ORGANS = {"cervical": (-1.0, 0.8, 0.10, 0.38, 0.85),
           "thoracic": (-0.2, 1.5, 0.07, 0.33, 0.7),
           "lumbar": (-0.8, 0.2, 0.10, 0.40, 0.90)}


@dataclass
class Rendered:
    """Slab-averaged signal (relative, fat = 1) and majority masks, all [nk, nj, ni]."""

    signal: np.ndarray
    label: np.ndarray
    cord: np.ndarray
    sac: np.ndarray


@dataclass
class _Prepared:
    comp: Component
    section: TubeSection


def _prepare(lesions: list[Lesion], frame_L: np.ndarray, frame_u: np.ndarray) -> list[_Prepared]:
    comps = [c for les in lesions for c in les.components]
    comps.sort(key=lambda c: ROLE_ORDER.index(c.role))
    out = []
    for c in comps:
        margin = max(c.margin, 1.0) + 5.0
        section = c.tube.section(frame_L, frame_u, margin)
        if section is not None:
            out.append(_Prepared(c, section))
    return out


def _coarse_texture(rng: np.random.Generator, shape: tuple[int, int, int], pixel: float, scale_mm: float,
                    factor: int) -> np.ndarray:
    """Low-frequency texture, computed on a grid `factor` times coarser in-plane and upsampled."""
    small = (shape[0], -(-shape[1] // factor), -(-shape[2] // factor))
    sigma = scale_mm / (pixel * factor)
    tex = texture_volume(rng, small, (0.5, sigma, sigma))
    zoomed = ndimage.zoom(tex, (1, factor, factor), order=1, mode="nearest", grid_mode=True)
    return np.ascontiguousarray(zoomed[:, : shape[1], : shape[2]])


def _organ_map(rng: np.random.Generator, shape: tuple[int, int, int], pixel: float, region: str) -> np.ndarray:
    """Signal of the viscera [nk, nj, ni]: smooth blobs cut into three classes, soft edges."""
    factor = 8
    small = (shape[0], -(-shape[1] // factor), -(-shape[2] // factor))
    sigma = ORGAN_MM / (pixel * factor)
    field = texture_volume(rng, small, (0.7, sigma, sigma))
    field = ndimage.zoom(field, (1, factor, factor), order=1, mode="nearest", grid_mode=True)
    field = field[:, : shape[1], : shape[2]]
    lo, hi, dark, mid, bright = _ORGANS[region]
    ramp = lambda a: np.clip((field - a) / 0.3 + 0.5, 0, 1)  # noqa: E731 - soft class edge
    return (dark + (mid - dark) * ramp(lo) + (bright - mid) * ramp(hi)).astype(np.float32)


def _component_signal(c: Component, base: float, box: tuple[slice, slice], textures: "_SliceTextures"
                      ) -> np.ndarray | float:
    if not c.heterogeneity and not c.patch:
        return base
    value = base * (1 + c.heterogeneity * textures.lesion[box])
    if c.patch:
        # Patches where the coarse texture is high (about a third of the lesion).
        value = value + c.patch * np.clip(textures.coarse[box] - 0.4, 0, 1.2) / 1.2
    return value


@dataclass
class _SliceTextures:
    fine: np.ndarray
    coarse: np.ndarray
    lesion: np.ndarray
    organs: np.ndarray


def _paint_component(p: _Prepared, signal: np.ndarray, label: np.ndarray, cord: np.ndarray,
                     sub: SubSlice, tissue: TissueSignal, textures: _SliceTextures) -> None:
    c, box = p.comp, p.section.box
    d = p.section.distance(sub.u[box], sub.v[box])
    inside = d < 0
    weight = np.clip(0.5 - d / c.margin, 0, 1)
    if c.within is not None:
        allowed = (sub.sac if c.within == "sac" else cord)[box]
        inside &= allowed
        weight *= allowed
    if not weight.any():
        return
    base = c.signal if c.tissue is None else tissue.of(c.tissue)
    if c.role == "tumour" and c.tissue is not None:
        base = c.signal * tissue.of(c.tissue)  # astrocytoma: relative to the cord
    value = _component_signal(c, base, box, textures)
    sb = signal[box]
    sb += weight * (value - sb)
    if c.in_cord:
        cord[box][inside] = True
    if c.label:
        label[box][inside] = c.label
        if c.within == "sac":
            cord[box][inside] = False  # an extramedullary mass displaces the cord
    elif c.role == "cyst":
        label[box][inside] = 0


def render(spine: Spine, cord: Tube, lesions: list[Lesion], tissue: TissueSignal, acq: Acquisition,
           rng: np.random.Generator) -> Rendered:
    """Render the case (anatomy + lesions) on the acquisition grid."""
    frame = make_frame(spine, acq.grid_y(), acq.grid_z())
    painter = AnatomyPainter(spine, frame, cord, rng)
    prepared = _prepare(lesions, frame.L, frame.u)
    ni, nj, nk = acq.shape
    px = FINE_TEXTURE_MM / acq.pixel_mm
    fine = texture_volume(rng, (nk, nj, ni), (0.3, px, px))
    coarse = _coarse_texture(rng, (nk, nj, ni), acq.pixel_mm, COARSE_TEXTURE_MM, 8)
    lesion = _coarse_texture(rng, (nk, nj, ni), acq.pixel_mm, LESION_TEXTURE_MM, 2)
    organs = _organ_map(rng, (nk, nj, ni), acq.pixel_mm, spine.region)
    coarse_amp = np.zeros(T.NUM_TISSUES, np.float32)
    for t, a in _COARSE.items():
        coarse_amp[t] = a
    out = Rendered(np.zeros((nk, nj, ni), np.float32), np.zeros((nk, nj, ni), np.uint8),
                   np.zeros((nk, nj, ni), np.uint8), np.zeros((nk, nj, ni), np.uint8))
    for k in range(nk):
        textures = _SliceTextures(fine[k], coarse[k], lesion[k], organs[k])
        _render_slice(k, acq, painter, prepared, tissue, textures, coarse_amp, out)
    return out


def _render_slice(k: int, acq: Acquisition, painter: AnatomyPainter, prepared: list[_Prepared],
                  tissue: TissueSignal, textures: _SliceTextures, coarse_amp: np.ndarray,
                  out: Rendered) -> None:
    shape = painter.shape
    acc = np.zeros(shape, np.float32)
    counts = np.zeros((4,) + shape, np.uint8)
    cord_count = np.zeros(shape, np.uint8)
    sac_count = np.zeros(shape, np.uint8)
    for x in acq.slice_x(k):
        sub = painter.paint(float(x))
        t = sub.tissue
        fine, coarse, organs = textures.fine, textures.coarse, textures.organs
        signal = tissue.signal[t] * (1 + tissue.texture[t] * fine + coarse_amp[t] * coarse)
        viscera = t == T.VISCERA
        signal[viscera] = organs[viscera] * (1 + 0.2 * fine[viscera] + 0.15 * coarse[viscera])
        label = np.zeros(shape, np.uint8)
        cord = sub.cord.copy()
        for p in prepared:
            _paint_component(p, signal, label, cord, sub, tissue, textures)
        acc += signal
        for c in range(4):
            counts[c] += label == c + 1
        cord_count += cord
        sac_count += sub.sac
    half = acq.n_sub / 2
    out.signal[k] = acc / acq.n_sub
    best = counts.argmax(axis=0)
    out.label[k] = np.where(counts.max(axis=0) > half, best + 1, 0)
    out.cord[k] = cord_count > half
    out.sac[k] = sac_count > half
