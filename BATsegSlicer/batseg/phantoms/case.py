"""`generate_case`: one synthetic sagittal T1 Gd spine MRI with its tumour label and cord mask.

Determinism: the case seed feeds a `numpy.random.SeedSequence` spawned into independent streams
(plan, acquisition, anatomy, lesions, rendering, noise). The same arguments give bit-identical
arrays and headers, and a case regenerated with `healthy=True` (same seed, same region) has the
same anatomy, acquisition and noise, i.e. the pre-tumour cord (used by the tests).

Case plan when not given: one tumour type drawn uniformly, a second lesion of the same type
with probability 8% (meningioma), 5% (ependymoma), 3% (astrocytoma) or 25% (hemangioblastoma,
von Hippel-Lindau); region drawn per type from METHOD.md section 6 (meningioma mostly thoracic,
ependymoma mostly cervical or at the conus, astrocytoma cervical/thoracic, hemangioblastoma
cervical/thoracic); healthy cases draw the region uniformly.

`contrast="t2"` renders a healthy case as sagittal T2-weighted instead (tissues.py): a
"wrong contrast" negative, meant to teach the T1 Gd model not to report bright CSF as tumour. Only
healthy cases exist in T2, since no tumour appearance is modelled in that contrast; the same
seed gives the same anatomy and acquisition as its T1 Gd twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from batseg.errors import BATsegError
from batseg.labels import class_by_value
from batseg.phantoms import tissues as T
from batseg.phantoms.acquisition import Acquisition, draw_acquisition, override, simulate, to_image
from batseg.phantoms.render import render
from batseg.phantoms.spine import REGIONS, Spine, draw_spine
from batseg.phantoms.tissues import CONTRASTS, draw_tissue_signal
from batseg.phantoms.tumours import (ASTROCYTOMA, EPENDYMOMA, HEMANGIOBLASTOMA, MENINGIOMA, TUMOUR_TYPES, Lesion,
                                     attach_flow_voids, deform_cord, draw_lesions)

REGION_PROBABILITY = {  # (cervical, thoracic, lumbar)
    MENINGIOMA: (0.2, 0.75, 0.05),
    EPENDYMOMA: (0.55, 0.2, 0.25),
    ASTROCYTOMA: (0.5, 0.5, 0.0),
    HEMANGIOBLASTOMA: (0.45, 0.5, 0.05),
}
SECOND_LESION_PROBABILITY = {MENINGIOMA: 0.08, EPENDYMOMA: 0.05, ASTROCYTOMA: 0.03, HEMANGIOBLASTOMA: 0.25}
DTYPES = ("int16", "float32")


@dataclass
class PhantomCase:
    """A generated case. All images share one geometry (size, spacing, origin, direction)."""

    image: sitk.Image  # T1 Gd-like (or T2-like) magnitude image, int16 (or float32)
    label: sitk.Image  # uint8, 0 background, 1-4 tumour classes
    cord: sitk.Image  # uint8 spinal cord mask (includes intramedullary tumour and cysts)
    sac: sitk.Image  # uint8 dural sac (intradural space incl. cord; not written to datasets)
    meta: dict


def _plan_types(rng: np.random.Generator, tumour_types: Sequence[int] | None, healthy: bool) -> list[int]:
    if healthy:
        return []
    if tumour_types is not None:
        types = [int(t) for t in tumour_types]
        bad = [t for t in types if t not in TUMOUR_TYPES]
        if bad or not types:
            raise BATsegError(f"tumour types must be a non-empty list of 1-4 (got {list(tumour_types)}); "
                              "use healthy=True for a case without tumour")
        return types
    first = int(rng.integers(1, 5))
    return [first, first] if rng.random() < SECOND_LESION_PROBABILITY[first] else [first]


def _plan_region(rng: np.random.Generator, types: list[int], region: str | None) -> str:
    if region is not None:
        if region not in REGIONS:
            raise BATsegError(f"unknown region {region!r}: use one of {', '.join(REGIONS)}")
        return region
    p = REGION_PROBABILITY[types[0]] if types else (1 / 3, 1 / 3, 1 / 3)
    return str(rng.choice(REGIONS, p=p))


def _level_name(spine: Spine, L: float) -> str:
    lv = spine.levels
    n = int(np.clip(np.searchsorted(lv.top, L, side="right") - 1, 0, len(lv.top) - 1))
    return lv.names[n]


def _lesion_meta(spine: Spine, lesion: Lesion) -> dict:
    lo, hi = lesion.extent(("tumour",))
    out = {"type": lesion.tumour_type, "name": class_by_value(lesion.tumour_type).key,
           "level": _level_name(spine, lesion.L0),
           "levels": [_level_name(spine, lo), _level_name(spine, hi)],
           "target_volume_cm3": round(lesion.target_volume_mm3 / 1000, 3),
           "companions": sorted({c.role for c in lesion.components if c.role not in ("tumour",)})}
    out.update(lesion.meta)
    return out


def generate_case(seed: int, tumour_types: Sequence[int] | None = None, region: str | None = None,
                  healthy: bool = False, *, matrix: int | None = None, n_slices: int | None = None,
                  acquisition: dict | None = None, dtype: str = "int16", contrast: str = "t1gd") -> PhantomCase:
    """Generate one phantom. `tumour_types` lists one label value (1-4) per lesion; `matrix`
    (superior-inferior pixels) and `n_slices` override the drawn acquisition size, and
    `acquisition` other drawn acquisition fields (e.g. {"fat_counts": 600, "snr": 15}; see
    acquisition.OVERRIDABLE); `contrast` is "t1gd" or, for a healthy case, "t2"."""
    if dtype not in DTYPES:
        raise BATsegError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    if contrast not in CONTRASTS:
        raise BATsegError(f"contrast must be one of {CONTRASTS}, not {contrast!r}")
    if contrast != "t1gd" and not healthy:
        raise BATsegError(f"{contrast} phantoms are healthy negatives only (no tumour appearance is modelled "
                          "in that contrast): pass healthy=True")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BATsegError(f"the seed must be a non-negative integer, not {seed!r}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(6)]
    rng_plan, rng_acq, rng_anat, rng_tum, rng_render, rng_noise = streams
    types = _plan_types(rng_plan, tumour_types, healthy)
    region = _plan_region(rng_plan, types, region)
    acq = draw_acquisition(rng_acq, region, matrix, n_slices)
    if acquisition:
        try:
            acq = override(acq, dict(acquisition))
        except (ValueError, TypeError) as exc:
            raise BATsegError(f"bad acquisition override: {exc}") from None
    fov_ap, fov_si = acq.fov_mm
    spine = draw_spine(rng_anat, region, fov_si, fov_ap)
    tissue = draw_tissue_signal(rng_anat, contrast)
    z = acq.grid_z()
    window = spine.fov_L_range(float(z[0]), float(z[-1]))
    lesions, dropped = draw_lesions(rng_tum, spine, types, window) if types else ([], [])
    cord = deform_cord(spine, lesions)
    attach_flow_voids(lesions, cord)
    rendered = render(spine, cord, lesions, tissue, acq, rng_render)
    L_centre = spine.meta["fov_centre_L"]
    y_canal = float(np.interp(L_centre, spine.L, spine.axis_y))
    y_back = y_canal + float(np.interp(L_centre, spine.L, spine.soft.skin_post))
    image = simulate(acq, rendered.signal, tissue.of(T.CORD), rng_noise, y_back, y_canal)
    if dtype == "int16":
        image = np.clip(np.rint(image), 0, np.iinfo(np.int16).max).astype(np.int16)
    meta = _case_meta(int(seed), region, spine, lesions, dropped, rendered.label, acq, window)
    meta["contrast"] = contrast
    return PhantomCase(to_image(image, acq), to_image(rendered.label, acq), to_image(rendered.cord, acq),
                       to_image(rendered.sac, acq), meta)


def _case_meta(seed: int, region: str, spine: Spine, lesions: list[Lesion], dropped: list[int],
               label: np.ndarray, acq: Acquisition, window: tuple[float, float]) -> dict:
    voxel_cm3 = acq.pixel_mm ** 2 * acq.slice_spacing_mm / 1000
    return {
        "seed": seed, "region": region, "healthy": not lesions,
        "tumour_types": [les.tumour_type for les in lesions], "dropped_tumour_types": dropped,
        "lesions": [_lesion_meta(spine, les) for les in lesions],
        "label_volumes_cm3": {class_by_value(c).key: round(float(np.count_nonzero(label == c)) * voxel_cm3, 3)
                              for c in TUMOUR_TYPES if np.any(label == c)},
        "acquisition": acq.meta(), "anatomy": {"conus_tip_level": _level_name(spine, spine.conus_tip),
                                               "fov_levels": [_level_name(spine, w) for w in window]},
        "note": "synthetic phantom; not for clinical use",
    }
