"""Spinal tumours of the four BATseg classes and their companions, built as tubes along the axis.

Each lesion is a list of `Component`s (tumour body, calcifications, cysts, syrinx, oedema, flow
voids, dural tail) plus what it does to the cord; `deform_cord` applies those effects.
Appearance and location follow METHOD.md section 6; the decisions the table leaves open:

- Volumes: log-normal with the BATseg mean and standard deviation per class (meningioma
  2.8 +/- 2.4 cm3, ependymoma 4.9 +/- 5.2, astrocytoma 5.8 +/- 6.0, hemangioblastoma
  2.5 +/- 3.7), redrawn until inside [0.3, 12], [0.3, 20], [0.3, 20] and [0.05, 8] cm3 (a
  lesion must fit in the canal). The label volume after partial volume is measured and
  reported in the case's meta; it differs from the drawn target by a few percent, more when a
  lesion had to be shortened to fit the field of view.
- Labels: only the tumour tissue is labelled (enhancing and non-enhancing parts, calcified foci
  included). Cysts (polar cysts of ependymomas, the cyst of a hemangioblastoma), syrinx,
  oedema, flow voids and the dural tail are NOT labelled, as in clinical tumour masks.
- Meningioma (1): intradural extramedullary. An ellipsoid whose centre lies on or just outside
  the dura, clipped to the dural sac, hence a dome with a broad dural base; anterior,
  posterior or lateral. The cord is pushed away from it and compressed (never expanded); the
  displacement is smoothed along the axis, which widens the CSF at the poles. Optional dural
  tail (40%) and calcified foci (20%).
- Ependymoma (2): central fusiform expansion over 2-4 vertebral levels (longer only if the
  volume does not fit the canal), sharp margin, moderate to intense heterogeneous enhancement,
  dark polar cysts (55% per pole) and sometimes a syrinx. In a lumbar field of view it sits at
  the conus/filum (myxopapillary type), centred in the sac.
- Astrocytoma (3): eccentric fusiform lesion over 1.5-5 levels, ill-defined: the image blends
  tumour and cord signal over a 2.5-5 mm ramp centred on the boundary, while the label is the
  core (distance < 0, i.e. blend weight > 0.5). Enhancement absent (20%), weak and patchy.
- Hemangioblastoma (4): small dorsal subpial nodule at the cord surface, very intense and
  homogeneous; a large cyst (80%) above and/or below it, sometimes a syrinx, cord oedema (50%)
  and serpiginous flow voids on the dorsal cord surface (60%). Multiple lesions are more
  frequent for this class (von Hippel-Lindau), see case.py.
- Intramedullary lesions (2-4) expand the cord: its cross-section at each level becomes the
  smallest axis-aligned ellipse (found numerically) containing the healthy cord and every
  tumour, cyst and syrinx with a 0.8 mm rim of cord tissue, but never beyond the dural sac. The
  cord mask always includes the intramedullary tumour and its cysts (a part that had to stay
  outside the expanded cord, e.g. an exophytic hemangioblastoma nodule or a conus ependymoma
  growing along the filum, is added to it); for a meningioma it is the displaced cord only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from batseg.phantoms import tissues as T
from batseg.phantoms.shapes import Tube
from batseg.phantoms.spine import Spine

MENINGIOMA, EPENDYMOMA, ASTROCYTOMA, HEMANGIOBLASTOMA = 1, 2, 3, 4
TUMOUR_TYPES = (MENINGIOMA, EPENDYMOMA, ASTROCYTOMA, HEMANGIOBLASTOMA)
INTRAMEDULLARY = (EPENDYMOMA, ASTROCYTOMA, HEMANGIOBLASTOMA)

# (mean, sd, min, max) in cm3
VOLUME_CM3: dict[int, tuple[float, float, float, float]] = {
    MENINGIOMA: (2.8, 2.4, 0.3, 12.0),
    EPENDYMOMA: (4.9, 5.2, 0.3, 20.0),
    ASTROCYTOMA: (5.8, 6.0, 0.3, 20.0),
    HEMANGIOBLASTOMA: (2.5, 3.7, 0.05, 8.0),
}
RIM_MM = 0.8  # cord tissue kept around an intramedullary tumour or cyst
SHARP_MM = 0.6  # intensity ramp of well-defined margins (in-plane anti-aliasing)
# Painting order: later roles overwrite earlier ones (cysts last: they are never labelled).
ROLE_ORDER = ("edema", "flow_void", "dural_tail", "tumour", "calcification", "cyst")


@dataclass
class Component:
    """One part of a lesion and how it looks."""

    tube: Tube
    role: str
    label: int = 0
    signal: float = 0.0  # relative signal (fat = 1) when `tissue` is None
    tissue: int | None = None  # use this tissue's signal instead
    heterogeneity: float = 0.0  # relative amplitude of the lesion texture (render.py)
    patch: float = 0.0  # extra signal of patchy enhancement (astrocytoma), where the coarse texture is high
    margin: float = SHARP_MM
    within: str | None = None  # "sac" or "cord": only painted there
    in_cord: bool = False  # part of the cord mask (intramedullary tumour, cysts, syrinx)


@dataclass
class Lesion:
    """A tumour with its companions, and its effect on the cord."""

    tumour_type: int
    L0: float
    components: list[Component]
    target_volume_mm3: float
    displacement: dict | None = None  # meningioma: geometry that pushes the cord
    flow_voids: list[dict] = field(default_factory=list)  # attached to the final cord surface
    meta: dict = field(default_factory=dict)

    @property
    def intramedullary(self) -> bool:
        return self.tumour_type in INTRAMEDULLARY

    def extent(self, roles: tuple[str, ...] | None = None) -> tuple[float, float]:
        """L range covered by the components with the given roles (all when None)."""
        spans = [c.tube.extent() for c in self.components if roles is None or c.role in roles]
        return min(s[0] for s in spans), max(s[1] for s in spans)


@dataclass(frozen=True)
class _Local:
    """Cord and sac geometry at one position L."""

    cord_cu: float
    cord_cv: float
    cord_ra: float
    cord_rb: float
    sac_cu: float
    sac_ra: float
    sac_rb: float
    pitch: float  # vertebral level height (body + disc)


def _local(spine: Spine, cord: Tube, L0: float) -> _Local:
    cu, cv, ra, rb = (float(a) for a in cord.at(L0))
    scu, _, sra, srb = (float(a) for a in spine.sac.at(L0))
    lv = spine.levels
    pitch = float(np.interp(L0, lv.centre, lv.body_h + lv.disc_h))
    return _Local(cu, cv, ra, rb, scu, sra, srb, pitch)


def _radius_along(ra: float, rb: float, angle: float) -> float:
    """Radius of an axis-aligned ellipse (ra along u, rb along v) in direction `angle`."""
    return 1.0 / math.sqrt(math.cos(angle) ** 2 / ra ** 2 + math.sin(angle) ** 2 / rb ** 2)


def draw_volume_mm3(rng: np.random.Generator, tumour_type: int) -> float:
    """A log-normal volume with the BATseg mean and sd of the class, redrawn into its range."""
    mean, sd, lo, hi = VOLUME_CM3[tumour_type]
    sigma2 = math.log(1 + (sd / mean) ** 2)
    mu = math.log(mean) - sigma2 / 2
    for _ in range(100):
        v = float(rng.lognormal(mu, math.sqrt(sigma2)))
        if lo <= v <= hi:
            return v * 1000.0
    return float(np.clip(v, lo, hi)) * 1000.0


def _fusiform_integral(power: float) -> float:
    """Integral of (1 - t^2)^(2 power) over [-1, 1] (volume factor of a fusiform tube)."""
    return math.sqrt(math.pi) * math.gamma(2 * power + 1) / math.gamma(2 * power + 1.5)


def _fusiform_size(volume: float, aspect: float, power: float, half_length: float,
                   cap: float, max_half_length: float) -> tuple[float, float]:
    """Radius and half-length of a fusiform tube of the given volume; the radius is capped (the
    tumour must fit in the sac), the length then grows up to `max_half_length`."""
    c = _fusiform_integral(power)
    radius = math.sqrt(volume / (math.pi * aspect * c * half_length))
    if radius > cap:
        radius = max(cap, 0.5)
        half_length = min(volume / (math.pi * aspect * c * radius ** 2), max(max_half_length, half_length))
    return radius, half_length


def _cysts(rng: np.random.Generator, L0: float, half_length: float, cu: float, cv: float,
           radius_a: float, aspect: float, cap: float, probability: float) -> list[Component]:
    """Polar cysts (dark, unlabelled) at either end of an intramedullary tumour."""
    out = []
    for side in (-1.0, 1.0):
        if rng.random() >= probability:
            continue
        length = rng.uniform(6.0, 25.0)
        overlap = rng.uniform(0.1, 0.3) * half_length
        Lc = L0 + side * (half_length - overlap + length / 2)
        rc = min(rng.uniform(0.5, 0.8) * radius_a, cap)
        out.append(Component(Tube.fusiform(Lc, length / 2, cu, cv, rc, rc * aspect, power=0.4),
                             "cyst", tissue=T.CYST))
    return out


def _syrinx(rng: np.random.Generator, start: float, side: float, cu: float, cv: float,
            cap: float) -> Component:
    length = rng.uniform(20.0, 80.0)
    r = min(rng.uniform(0.8, 2.0), cap)
    return Component(Tube.fusiform(start + side * length / 2, length / 2, cu, cv, r, r, power=0.25),
                     "cyst", tissue=T.CYST)


def _ependymoma(rng: np.random.Generator, spine: Spine, cord: Tube, L0: float, scale: float) -> Lesion:
    loc = _local(spine, cord, L0)
    volume = draw_volume_mm3(rng, EPENDYMOMA) * scale
    conus = L0 > spine.conus_tip - 20  # myxopapillary ependymoma of the conus / filum
    if conus:
        cu, cv = loc.sac_cu + rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
        aspect = loc.sac_rb / loc.sac_ra * rng.uniform(0.8, 1.0)
    else:
        cu, cv = loc.cord_cu + rng.uniform(-0.3, 0.3), loc.cord_cv + rng.uniform(-0.3, 0.3)
        aspect = loc.cord_rb / max(loc.cord_ra, 0.5) * rng.uniform(0.85, 1.15)
    cap = min(loc.sac_ra - abs(cu - loc.sac_cu), (loc.sac_rb - abs(cv)) / aspect) - RIM_MM - 0.5
    power = rng.uniform(0.35, 0.7)
    half = rng.uniform(2.0, 4.0) * loc.pitch / 2
    radius, half = _fusiform_size(volume, aspect, power, half, cap, 3.0 * loc.pitch)
    tumour = Component(Tube.fusiform(L0, half, cu, cv, radius, radius * aspect, power=power),
                       "tumour", EPENDYMOMA, signal=rng.uniform(0.6, 0.95), heterogeneity=rng.uniform(0.12, 0.3))
    parts = [tumour]
    if not conus:
        cyst_cap = cap
        parts += _cysts(rng, L0, half, cu, cv, max(radius, loc.cord_ra), aspect, cyst_cap, 0.55)
        if rng.random() < 0.25:
            side = rng.choice([-1.0, 1.0])
            parts.append(_syrinx(rng, L0 + side * (half + 10.0), side, cu, cv, cap))
    return Lesion(EPENDYMOMA, L0, parts, volume, meta={"conus": bool(conus)})


def _astrocytoma(rng: np.random.Generator, spine: Spine, cord: Tube, L0: float, scale: float) -> Lesion:
    loc = _local(spine, cord, L0)
    volume = draw_volume_mm3(rng, ASTROCYTOMA) * scale
    aspect = rng.uniform(0.75, 1.25)
    power = rng.uniform(0.4, 0.8)
    half = rng.uniform(1.5, 5.0) * loc.pitch / 2
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(0.25, 0.6) * _radius_along(max(loc.cord_ra, 0.5), max(loc.cord_rb, 0.5), angle)
    radius = cap = 0.0
    for _ in range(4):  # move towards the centre until the tumour fits the canal
        cu = loc.cord_cu + offset * math.cos(angle)
        cv = loc.cord_cv + offset * math.sin(angle)
        cap = min(loc.sac_ra - abs(cu - loc.sac_cu), (loc.sac_rb - abs(cv)) / aspect) - RIM_MM - 0.5
        radius, _ = _fusiform_size(volume, aspect, power, half, 1e9, half)
        if radius <= cap:
            break
        offset *= 0.5
    radius, half = _fusiform_size(volume, aspect, power, half, cap, 4.0 * loc.pitch)
    mode = rng.choice(["none", "weak", "patchy"], p=[0.2, 0.4, 0.4])
    base = {"none": rng.uniform(0.9, 1.0), "weak": rng.uniform(1.05, 1.25),
            "patchy": rng.uniform(1.0, 1.15)}[mode]
    patch = {"none": 0.0, "weak": rng.uniform(0.08, 0.2), "patchy": rng.uniform(0.2, 0.4)}[mode]
    tumour = Component(Tube.fusiform(L0, half, cu, cv, radius, radius * aspect, power=power),
                       "tumour", ASTROCYTOMA, signal=base, heterogeneity=rng.uniform(0.05, 0.15),
                       patch=patch, margin=rng.uniform(2.5, 5.0))
    # `signal` of an astrocytoma is relative to the cord: set by the renderer (see render.py).
    tumour.tissue = T.CORD
    parts = [tumour] + _cysts(rng, L0, half, cu, cv, radius, aspect, cap, 0.1)
    if rng.random() < 0.1:
        side = rng.choice([-1.0, 1.0])
        parts.append(_syrinx(rng, L0 + side * half, side, loc.cord_cu, loc.cord_cv, cap))
    return Lesion(ASTROCYTOMA, L0, parts, volume, meta={"enhancement": str(mode)})


def _nodule(rng: np.random.Generator, loc: _Local, L0: float, volume: float) -> Component:
    """A hemangioblastoma nodule at the dorsal cord surface, fitted inside the dural sac."""
    angle = rng.normal(0.0, 0.45)  # dorsal (+u), give or take 25 degrees
    along_l, along_t = rng.uniform(1.0, 1.6), rng.uniform(0.85, 1.2)
    r = (3 * volume / (4 * math.pi * along_l * along_t)) ** (1 / 3)
    cord_r = _radius_along(max(loc.cord_ra, 0.5), max(loc.cord_rb, 0.5), angle)
    sac_r = _radius_along(loc.sac_ra, loc.sac_rb, angle)
    frac = rng.uniform(0.55, 0.95)  # depth of the centre: fraction of the cord radius
    nu, nv = math.cos(angle), math.sin(angle)
    centre_from_sac = lambda f: ((loc.cord_cu - loc.sac_cu) * nu + loc.cord_cv * nv) + f * cord_r  # noqa: E731
    limit = sac_r - RIM_MM - 0.4
    # Fit the nodule: move it towards the cord centre, then flatten it and elongate it.
    if centre_from_sac(frac) + r > limit:
        frac = max((limit - r - centre_from_sac(0.0)) / cord_r, 0.0)
    r_d = min(r, max(limit - centre_from_sac(frac), 0.8))
    r_t = min(r * along_t, max(0.8 * _radius_along(loc.sac_ra, loc.sac_rb, angle + math.pi / 2) - 1.2, 0.8))
    r_l = min(volume / (4 / 3 * math.pi * r_d * r_t), 3.5 * max(r_d, r_t), 40.0)
    cu = loc.cord_cu + frac * cord_r * nu
    cv = loc.cord_cv + frac * cord_r * nv
    return Component(Tube.fusiform(L0, r_l, cu, cv, r_d, r_t, psi=angle), "tumour", HEMANGIOBLASTOMA,
                     signal=rng.uniform(0.95, 1.2), heterogeneity=rng.uniform(0.02, 0.06))


def _nodule_cysts(rng: np.random.Generator, loc: _Local, L0: float, r_l: float) -> list[Component]:
    """The cyst(s) of a hemangioblastoma, above and/or below the nodule, and a syrinx."""
    cap = loc.sac_ra - abs(loc.cord_cu - loc.sac_cu) - RIM_MM - 0.5
    aspect = loc.cord_rb / max(loc.cord_ra, 0.5)
    sides = {"up": [-1.0], "down": [1.0], "both": [-1.0, 1.0]}[
        str(rng.choice(["up", "down", "both"], p=[0.35, 0.25, 0.4]))]
    parts = []
    for side in sides:
        length = rng.uniform(1.5, 5.0) * loc.pitch
        rc = min(rng.uniform(0.6, 1.0) * max(loc.cord_ra, 1.0), cap)
        Lc = L0 + side * (0.6 * r_l + length / 2)
        cu_c = loc.cord_cu + rng.uniform(-0.4, 0.2)
        parts.append(Component(Tube.fusiform(Lc, length / 2, cu_c, loc.cord_cv, rc, rc * aspect, power=0.35),
                               "cyst", tissue=T.CYST))
        if rng.random() < 0.35:
            parts.append(_syrinx(rng, Lc + side * length / 2, side, cu_c, loc.cord_cv, cap))
    return parts


def _flow_voids(rng: np.random.Generator, L0: float) -> list[dict]:
    """Parameters of 1-3 serpiginous vessels (tubes made once the cord is final)."""
    return [{"L_lo": L0 - rng.uniform(8.0, 30.0), "L_hi": L0 + rng.uniform(8.0, 30.0),
             "amplitude": rng.uniform(1.0, 4.0), "wavelength": rng.uniform(8.0, 20.0),
             "phase": rng.uniform(0, 2 * np.pi), "radius": rng.uniform(0.6, 1.1), "v0": rng.uniform(-2.0, 2.0)}
            for _ in range(int(rng.integers(1, 4)))]


def _hemangioblastoma(rng: np.random.Generator, spine: Spine, cord: Tube, L0: float,
                      scale: float) -> Lesion:
    loc = _local(spine, cord, L0)
    volume = draw_volume_mm3(rng, HEMANGIOBLASTOMA) * scale
    nodule = _nodule(rng, loc, L0, volume)
    parts = [nodule]
    if rng.random() < 0.8:  # the cyst, often larger than the nodule
        parts += _nodule_cysts(rng, loc, L0, nodule.tube.extent()[1] - L0)
    if rng.random() < 0.5:
        half = rng.uniform(1.0, 2.0) * loc.pitch
        parts.append(Component(Tube.fusiform(L0, half, loc.cord_cu, loc.cord_cv, 0.9 * loc.cord_ra,
                                             0.9 * loc.cord_rb, power=0.3), "edema", tissue=T.EDEMA,
                               margin=2.0, within="cord"))
    lesion = Lesion(HEMANGIOBLASTOMA, L0, parts, volume)
    if rng.random() < 0.6:
        lesion.flow_voids = _flow_voids(rng, L0)
    return lesion


def _dome_area_integral(sac_ra: float, sac_rb: float, centre: tuple[float, float], n: tuple[float, float],
                        r_d: float, r_t: float) -> float:
    """Integral over t in [-1, 1] of the area of (ellipse scaled by sqrt(1 - t^2)) inside the sac
    cross-section (sac centred at the origin), in mm2: the dome volume is this times r_l."""
    step = 0.2
    ext = max(r_d, r_t) + step
    g = np.arange(-ext, ext + step, step)
    du, dv = np.meshgrid(g, g, indexing="ij")
    a = du * n[0] + dv * n[1]
    b = -du * n[1] + dv * n[0]
    q = (a / r_d) ** 2 + (b / r_t) ** 2
    inside_sac = ((du + centre[0]) / sac_ra) ** 2 + ((dv + centre[1]) / sac_rb) ** 2 < 1
    q = q[inside_sac]
    t = np.linspace(-1, 1, 41)
    areas = np.array([np.count_nonzero(q < 1 - ti ** 2) for ti in t]) * step ** 2
    return float(np.trapezoid(areas, t))


def _meningioma(rng: np.random.Generator, spine: Spine, cord: Tube, L0: float, scale: float) -> Lesion:
    loc = _local(spine, cord, L0)
    volume = draw_volume_mm3(rng, MENINGIOMA) * scale
    side = str(rng.choice(["anterior", "posterior", "lateral"], p=[0.3, 0.25, 0.45]))
    base_angle = {"anterior": math.pi, "posterior": 0.0, "lateral": rng.choice([-1, 1]) * math.pi / 2}[side]
    psi = float(base_angle + np.deg2rad(rng.uniform(-35, 35)))
    n = (math.cos(psi), math.sin(psi))
    r_sac = _radius_along(loc.sac_ra, loc.sac_rb, psi)
    r_perp = _radius_along(loc.sac_ra, loc.sac_rb, psi + math.pi / 2)
    cord_r = _radius_along(max(loc.cord_ra, 0.5), max(loc.cord_rb, 0.5), psi)
    e = rng.uniform(0.0, 0.35)  # centre outside the dura by e * r_d: broad dural base
    avail = max(2 * r_sac - 0.8 * cord_r - 1.0, 2.0)  # leave a compressed cord and CSF film
    r_d = rng.uniform(0.5, 0.85) * avail / (1 - e)
    r_t = r_d * rng.uniform(0.9, 1.5)
    aspect = rng.uniform(1.0, 2.0)
    r_l = r_d
    for _ in range(6):
        centre = (r_sac + e * r_d) * n[0], (r_sac + e * r_d) * n[1]
        integral = _dome_area_integral(loc.sac_ra, loc.sac_rb, centre, n, r_d, r_t)
        r_l = volume / max(integral, 1e-3)
        ratio = r_l / (aspect * max(r_d, r_t))
        if 0.8 < ratio < 1.25:
            break
        f = ratio ** (1 / 3)
        r_d = min(r_d * f, avail / (1 - e))
        r_t = min(r_t * f, 2.5 * r_perp)
    r_l = float(np.clip(r_l, 3.0, 45.0))
    cu = loc.sac_cu + (r_sac + e * r_d) * n[0]
    cv = (r_sac + e * r_d) * n[1]
    signal = rng.uniform(0.8, 1.05)
    tumour = Component(Tube.fusiform(L0, r_l, cu, cv, r_d, r_t, psi=psi), "tumour", MENINGIOMA,
                       signal=signal, heterogeneity=rng.uniform(0.03, 0.08), within="sac")
    parts = [tumour]
    if rng.random() < 0.2:
        for _ in range(int(rng.integers(1, 4))):
            w = rng.uniform(e + 0.25, 0.85)
            rc = rng.uniform(0.8, 1.8)
            off_t = rng.uniform(-0.3, 0.3) * r_t
            parts.append(Component(
                Tube.fusiform(L0 + rng.uniform(-0.4, 0.4) * r_l, rc,
                              cu - w * r_d * n[0] - off_t * n[1], cv - w * r_d * n[1] + off_t * n[0], rc, rc),
                "calcification", MENINGIOMA, tissue=T.CALCIFICATION, within="sac"))
    if rng.random() < 0.4:
        parts += _dural_tails(rng, L0, r_l, loc.sac_cu + r_sac * n[0], r_sac * n[1], r_t, psi, signal)
    displacement = {"psi": psi, "r_sac": r_sac, "e": e, "r_d": r_d, "r_l": r_l, "L0": L0}
    return Lesion(MENINGIOMA, L0, parts, volume, displacement=displacement, meta={"side": side})


def _dural_tails(rng: np.random.Generator, L0: float, r_l: float, au: float, av: float, r_t: float,
                 psi: float, signal: float) -> list[Component]:
    """Tapering enhancing dura beyond the tumour's poles (not labelled)."""
    tails = []
    for side in ([-1.0], [1.0], [-1.0, 1.0])[int(rng.integers(0, 3))]:
        length = rng.uniform(5.0, 15.0)
        L = np.linspace(L0 + side * 0.7 * r_l, L0 + side * (r_l + length), 60)
        if side < 0:
            L = L[::-1]
        frac = np.abs(L - (L0 + side * 0.7 * r_l)) / (0.3 * r_l + length)
        ra = 1.3 - 1.0 * frac
        rb = 0.45 * r_t * (1 - 0.6 * frac)
        ones = np.ones_like(L)
        tails.append(Component(Tube(L, au * ones, av * ones, ra, rb, psi), "dural_tail",
                               signal=0.85 * signal, margin=0.4))
    return tails


DESIGNERS = {MENINGIOMA: _meningioma, EPENDYMOMA: _ependymoma, ASTROCYTOMA: _astrocytoma,
             HEMANGIOBLASTOMA: _hemangioblastoma}


def _allowed_range(spine: Spine, tumour_type: int, window: tuple[float, float]) -> tuple[float, float]:
    lo, hi = window[0] + 15.0, window[1] - 15.0
    tip = spine.conus_tip
    if tumour_type == MENINGIOMA:
        hi = min(hi, spine.sac_end - 30.0)
    elif tumour_type == EPENDYMOMA and spine.region == "lumbar":
        lo, hi = max(lo, tip - 12.0), min(hi, tip + 15.0)
    else:
        hi = min(hi, tip - {EPENDYMOMA: 35.0, ASTROCYTOMA: 30.0, HEMANGIOBLASTOMA: 15.0}[tumour_type])
    return lo, max(hi, lo)


def _fits(lesion: Lesion, window: tuple[float, float], taken: list[tuple[float, float]]) -> bool:
    lo, hi = lesion.extent(("tumour",))
    if lo < window[0] + 3.0 or hi > window[1] - 3.0:
        return False
    a, b = lesion.extent()
    return all(b + 8.0 < c or a - 8.0 > d for c, d in taken)


def draw_lesions(rng: np.random.Generator, spine: Spine, tumour_types: list[int],
                 window: tuple[float, float]) -> tuple[list[Lesion], list[int]]:
    """Design and place one lesion per requested type inside the L window of the field of view.

    Returns the lesions and the types that could not be placed (a later lesion that does not fit
    beside the earlier ones is dropped; the first is always placed, shrunk if need be)."""
    lesions: list[Lesion] = []
    dropped: list[int] = []
    for tumour_type in tumour_types:
        lo, hi = _allowed_range(spine, tumour_type, window)
        taken = [les.extent() for les in lesions]
        placed, scale, candidate = None, 1.0, None
        for attempt in range(30):
            if attempt and attempt % 10 == 0:
                scale *= 0.6  # shrink a lesion that does not fit the field of view
            candidate = DESIGNERS[tumour_type](rng, spine, spine.cord, rng.uniform(lo, hi), scale)
            if _fits(candidate, window, taken):
                placed = candidate
                break
        if placed is None and not lesions:
            placed = candidate
        if placed is None:
            dropped.append(tumour_type)
        else:
            if placed.intramedullary:
                for c in placed.components:
                    c.in_cord = c.role in ("tumour", "cyst", "calcification")
            lesions.append(placed)
    return lesions, dropped


# ----- effects on the cord -------------------------------------------------------------------
def _spread(profile: np.ndarray, sigma_mm: float, step: float) -> np.ndarray:
    """Smooth a non-negative profile along L without lowering it (gradual onset at the poles)."""
    return np.maximum(profile, ndimage.gaussian_filter1d(profile, sigma_mm / step, mode="constant"))


def _displace(cord: Tube, sac: Tube, lesion: Lesion) -> Tube:
    """Push and compress the cord away from an extramedullary mass (a meningioma)."""
    g = lesion.displacement
    L = cord.L
    step = float(L[1] - L[0])
    s = np.sqrt(np.clip(1 - ((L - g["L0"]) / g["r_l"]) ** 2, 0, None))
    depth = np.where(s > 0, np.clip(g["r_d"] * (s - g["e"]), 0, None), 0.0)
    psi = g["psi"]
    nu, nv = math.cos(psi), math.sin(psi)
    sac_cu = np.interp(L, sac.L, sac.cu)
    c = (cord.cu - sac_cu) * nu + cord.cv * nv  # cord centre along n, from the sac centre
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 / np.sqrt(nu ** 2 / np.maximum(cord.ra, 1e-3) ** 2 + nv ** 2 / np.maximum(cord.rb, 1e-3) ** 2)
    R = g["r_sac"]
    limit = R - depth - 0.4
    new_c = np.where(c + r > limit, limit - r, c)
    squeeze = new_c - r < -R + 0.3
    new_r = np.where(squeeze, np.maximum((limit + R - 0.3) / 2, 0.35 * r), r)
    new_c = np.where(squeeze, limit - new_r, new_c)
    shift = _spread(np.clip(c - new_c, 0, None), 5.0, step)
    loss = _spread(np.clip(1 - new_r / np.maximum(r, 1e-3), 0, 0.65), 5.0, step)
    present = cord.ra > 0
    ra = cord.ra * (1 - loss * abs(nu)) * (1 + 0.25 * loss * abs(nv))
    rb = cord.rb * (1 - loss * abs(nv)) * (1 + 0.25 * loss * abs(nu))
    return Tube(L, cord.cu - shift * nu, cord.cv - shift * nv, np.where(present, ra, 0), np.where(present, rb, 0))


def _inflate(cord: Tube, parts: list[Tube], sac: Tube) -> Tube:
    """Grow the cord's cross-section to the smallest axis-aligned ellipse (found numerically)
    that contains the cord and every part with a rim of cord tissue."""
    L = cord.L
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ca, sa = np.cos(angles), np.sin(angles)
    pts_u = [cord.cu[:, None] + cord.ra[:, None] * ca]
    pts_v = [cord.cv[:, None] + cord.rb[:, None] * sa]
    grow = np.zeros(L.shape, bool)
    for part in parts:
        pu, pv, pa, pb = part.at(L)
        present = pa > 0
        grow |= present
        a = np.where(present, pa + RIM_MM, 0)[:, None] * ca
        b = np.where(present, pb + RIM_MM, 0)[:, None] * sa
        c, s = math.cos(part.psi), math.sin(part.psi)
        pu_pts = pu[:, None] + a * c - b * s
        pv_pts = pv[:, None] + a * s + b * c
        # Absent parts collapse onto the cord centre, which is inside the cord anyway.
        pts_u.append(np.where(present[:, None], pu_pts, cord.cu[:, None]))
        pts_v.append(np.where(present[:, None], pv_pts, cord.cv[:, None]))
    U, V = np.concatenate(pts_u, axis=1), np.concatenate(pts_v, axis=1)
    u0, u1, v0, v1 = U.min(1), U.max(1), V.min(1), V.max(1)
    cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
    ra, rb = np.maximum((u1 - u0) / 2, 1e-3), np.maximum((v1 - v0) / 2, 1e-3)
    scale = np.sqrt((((U - cu[:, None]) / ra[:, None]) ** 2 + ((V - cv[:, None]) / rb[:, None]) ** 2).max(1))
    ra, rb = ra * np.maximum(scale, 1), rb * np.maximum(scale, 1)
    cu = np.where(grow, cu, cord.cu)
    cv = np.where(grow, cv, cord.cv)
    ra = np.where(grow, ra, cord.ra)
    rb = np.where(grow, rb, cord.rb)
    # The expanded cord may efface the CSF but stays inside the dural sac.
    scu, _, sra, srb = sac.at(L)
    ra = np.minimum(ra, np.maximum(sra - np.abs(cu - scu) - 0.2, 0))
    rb = np.minimum(rb, np.maximum(srb - np.abs(cv) - 0.2, 0))
    return Tube(L, cu, cv, ra, rb)


def deform_cord(spine: Spine, lesions: list[Lesion]) -> Tube:
    """The cord after every lesion's effect: displacement by extramedullary masses, then
    expansion around intramedullary tumours and cysts."""
    cord = spine.cord
    for lesion in lesions:
        if lesion.displacement is not None:
            cord = _displace(cord, spine.sac, lesion)
    parts = [c.tube for les in lesions if les.intramedullary for c in les.components
             if c.role in ("tumour", "cyst", "calcification")]
    if parts:
        cord = _inflate(cord, parts, spine.sac)
    return cord


def attach_flow_voids(lesions: list[Lesion], cord: Tube) -> None:
    """Serpiginous flow voids on the dorsal surface of the (final) cord."""
    for lesion in lesions:
        for fv in lesion.flow_voids:
            L = np.arange(fv["L_lo"], fv["L_hi"], 0.25)
            cu, cv, ra, _ = cord.at(L)
            present = ra > 0
            r = np.where(present, fv["radius"], 0.0)
            wave = fv["amplitude"] * np.sin(2 * np.pi * L / fv["wavelength"] + fv["phase"])
            tube = Tube(L, cu + ra + 0.4 + fv["radius"], cv + fv["v0"] + wave, r, r)
            lesion.components.append(Component(tube, "flow_void", tissue=T.VESSEL, margin=0.4, within="sac"))
