"""One case's spine: vertebral levels, curved centreline, bony canal, dural sac, cord, roots and
the soft-tissue envelope, drawn at random around typical adult dimensions.

Coordinates. The *grid frame* is the image's own frame in mm, centred on the field of view:
x left, y posterior, z superior (the image index axes i, j, k run along +y, -z, -x). The *spine
frame* follows the canal: L is the position along its centreline (mm from the top of C1,
increasing inferiorly), u the offset across it in the sagittal plane (posterior positive) and v
the offset to the left. `Frame` (anatomy.py) converts between them to first order in u.

Decisions (typical adult values; the papers give none):
- vertebral body heights, disc heights, body depths, canal and cord radii, spinous process
  lengths and angles come from the table below (textbook morphometry, rounded) and are scaled
  per case by a body-size factor (0.9-1.1) with a few percent of per-level jitter;
- curvature is drawn per segment (cervical and lumbar lordosis, thoracic and sacral kyphosis)
  and the field of view is centred on the segment with a residual tilt of +/- 6 degrees;
- the cord has a cervical enlargement (C4-C6), a lumbar enlargement (T11-T12) and tapers to
  the conus tip at about L1-L2 (drawn between mid-T12 and the L2-L3 disc); below it the filum
  and the cauda equina roots (which lie dorsally in a supine patient) continue to the end of
  the dural sac at about S2;
- the dural sac sits inside the bony canal with more epidural fat posteriorly (thoracic and
  lumbar) and an enhancing venous plexus anteriorly; the cord lies slightly anterior in the sac.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from batseg.phantoms.fields import smooth_profile
from batseg.phantoms.shapes import Tube

REGIONS = ("cervical", "thoracic", "lumbar")
STEP_MM = 0.5  # resolution of the 1D profiles along the axis


@dataclass(frozen=True)
class LevelSpec:
    """Typical adult dimensions of one vertebral level (mm, radii are half-diameters)."""

    name: str
    body_h: float  # body height (0: no body, C1)
    disc_h: float  # disc (or joint space) below the body
    depth: float  # body depth, anterior-posterior
    canal_ap: float  # bony canal radius, anterior-posterior
    canal_lr: float  # bony canal radius, left-right
    sp_len: float  # spinous process length from the canal wall
    sp_angle: float  # caudal slope of the spinous process, degrees from horizontal
    sp_thick: float  # arch / spinous process thickness, perpendicular to its length
    cord_ap: float  # cord radius AP at this level (before the conus taper)
    cord_lr: float  # cord radius LR
    body_lr: float  # body half-width left-right / body depth


_T = LevelSpec
LEVEL_TABLE: tuple[LevelSpec, ...] = (
    _T("C1", 10.0, 4.0, 0.0, 8.5, 14.0, 10, 10, 8, 4.5, 6.2, 0.0),
    _T("C2", 20.0, 4.5, 16.0, 8.0, 12.5, 26, 15, 9, 4.2, 5.9, 0.85),
    _T("C3", 14.0, 5.0, 16.0, 7.5, 12.5, 16, 15, 6, 4.0, 6.1, 0.85),
    _T("C4", 14.0, 5.0, 16.5, 7.3, 12.5, 16, 15, 6, 4.0, 6.5, 0.85),
    _T("C5", 14.0, 5.5, 17.0, 7.3, 13.0, 17, 15, 6, 4.0, 6.8, 0.85),
    _T("C6", 14.0, 5.5, 17.5, 7.3, 13.0, 20, 20, 6, 3.9, 6.5, 0.85),
    _T("C7", 15.0, 5.0, 18.0, 7.3, 12.5, 30, 25, 7, 3.7, 5.8, 0.8),
    _T("T1", 17.0, 4.0, 19.0, 7.0, 10.5, 32, 35, 8, 3.4, 4.8, 0.7),
    _T("T2", 18.0, 4.0, 20.0, 7.0, 9.0, 32, 45, 9, 3.2, 4.3, 0.65),
    _T("T3", 18.0, 4.0, 21.0, 6.9, 8.5, 33, 55, 9, 3.2, 4.1, 0.6),
    _T("T4", 18.5, 4.0, 22.0, 6.8, 8.5, 33, 60, 9, 3.1, 4.0, 0.6),
    _T("T5", 19.0, 4.5, 22.5, 6.8, 8.5, 33, 60, 9, 3.1, 4.0, 0.6),
    _T("T6", 19.5, 4.5, 23.0, 6.8, 8.5, 33, 60, 9, 3.1, 4.0, 0.6),
    _T("T7", 20.0, 4.5, 24.0, 6.8, 8.5, 33, 60, 9, 3.1, 4.0, 0.6),
    _T("T8", 20.5, 5.0, 25.0, 6.8, 8.5, 32, 55, 9, 3.1, 4.0, 0.6),
    _T("T9", 21.0, 5.0, 26.0, 6.9, 8.5, 31, 50, 9, 3.2, 4.1, 0.6),
    _T("T10", 22.0, 5.5, 27.0, 7.0, 9.0, 30, 40, 8, 3.4, 4.3, 0.62),
    _T("T11", 23.0, 6.5, 28.0, 7.5, 9.5, 28, 25, 10, 3.7, 4.6, 0.65),
    _T("T12", 24.0, 7.5, 29.0, 8.0, 10.0, 27, 15, 14, 3.8, 4.6, 0.7),
    _T("L1", 26.0, 9.0, 30.0, 8.5, 11.0, 28, 8, 18, 3.6, 4.3, 0.75),
    _T("L2", 27.0, 10.0, 31.0, 8.5, 11.0, 28, 5, 20, 3.0, 3.5, 0.75),
    _T("L3", 27.0, 11.0, 32.0, 8.5, 11.5, 28, 5, 20, 0.0, 0.0, 0.75),
    _T("L4", 27.0, 11.0, 33.0, 8.5, 12.0, 26, 5, 18, 0.0, 0.0, 0.75),
    _T("L5", 26.0, 10.0, 33.0, 9.0, 12.5, 24, 8, 15, 0.0, 0.0, 0.75),
    _T("S1", 28.0, 3.0, 32.0, 8.0, 13.0, 18, 20, 10, 0.0, 0.0, 0.75),
    _T("S2", 22.0, 2.0, 25.0, 7.0, 12.0, 12, 25, 8, 0.0, 0.0, 0.7),
    _T("S3", 18.0, 2.0, 20.0, 6.0, 10.0, 10, 30, 6, 0.0, 0.0, 0.65),
    _T("S4", 14.0, 2.0, 14.0, 5.0, 8.0, 6, 30, 5, 0.0, 0.0, 0.6),
)

# Per segment: sign of the curvature d(theta)/dL (theta: tangent angle, posterior positive) and
# its range in rad/mm (cervical lordosis 15-40 deg over ~105 mm, thoracic kyphosis 25-55 deg
# over ~270 mm, lumbar lordosis 40-65 deg over ~180 mm, sacral kyphosis).
_CURVATURE = {"C": (+1, 0.0025, 0.0065), "T": (-1, 0.0016, 0.0036),
              "L": (+1, 0.0039, 0.0063), "S": (-1, 0.006, 0.012)}
# Epidural space (anterior, posterior, lateral) in mm per segment.
_EPIDURAL = {"C": (0.6, 1.2, 2.5), "T": (0.7, 2.8, 1.5), "L": (1.5, 3.5, 2.5), "S": (1.5, 3.0, 2.5)}


@dataclass
class Levels:
    """The vertebral levels of one case, positions along L (mm)."""

    names: list[str]
    segment: list[str]  # "C", "T", "L", "S"
    top: np.ndarray  # body top (C1: top of the arch)
    body_h: np.ndarray
    disc_h: np.ndarray
    depth: np.ndarray
    body_lr: np.ndarray  # body half-width LR (mm)
    sp_len: np.ndarray
    sp_angle: np.ndarray  # radians
    sp_thick: np.ndarray
    lamina: np.ndarray  # lamina depth behind the canal wall

    @property
    def centre(self) -> np.ndarray:
        return self.top + 0.5 * self.body_h

    def index(self, name: str) -> int:
        return self.names.index(name)

    def span(self, first: str, last: str) -> tuple[float, float]:
        """L from the top of level `first` to the bottom of the disc below `last`."""
        i, j = self.index(first), self.index(last)
        return float(self.top[i]), float(self.top[j] + self.body_h[j] + self.disc_h[j])


@dataclass
class SoftTissue:
    """Skin and fat envelope, fascial fat planes and region-specific anterior structures."""

    skin_post: np.ndarray  # distance canal centre -> posterior skin, per L
    fat_post: np.ndarray  # subcutaneous fat thickness, posterior
    skin_ant: np.ndarray  # distance canal centre -> anterior skin
    fat_ant: np.ndarray
    half_width: np.ndarray  # body half-width (neck or trunk), curves the skin laterally
    fascia: list[tuple[float, float, float, float, float]]  # (depth fraction, amplitude, k, phase, thickness)
    airway: Tube | None
    vessels: list[Tube]
    lung_span: tuple[float, float] | None  # L range of the lungs
    lung_v: float  # |v| beyond which the lungs start


@dataclass
class Spine:
    """Everything about one case's healthy anatomy, in the spine frame plus its placement."""

    region: str
    L: np.ndarray  # 1D grid along the axis
    levels: Levels
    canal_ap: np.ndarray
    canal_lr: np.ndarray
    sac: Tube  # dural sac (intradural space)
    cord: Tube
    roots: list[Tube]  # filum and cauda equina
    conus_tip: float
    sac_end: float
    segment_of_L: np.ndarray  # index into "CTLS" per L
    epidural_ant: np.ndarray  # anterior epidural space (venous plexus) thickness per L
    # placement of the centreline in the grid frame
    theta: np.ndarray
    axis_y: np.ndarray
    axis_z: np.ndarray
    axis_x: np.ndarray
    axial_rotation: float
    soft: SoftTissue
    meta: dict = field(default_factory=dict)

    def at(self, profile: np.ndarray, L: np.ndarray | float) -> np.ndarray:
        return np.interp(L, self.L, profile)

    def fov_L_range(self, z_top: float, z_bottom: float) -> tuple[float, float]:
        """L where the centreline crosses the top and bottom rows of the field of view."""
        z_desc = self.axis_z[::-1]
        L_desc = self.L[::-1]
        return float(np.interp(z_top, z_desc, L_desc)), float(np.interp(z_bottom, z_desc, L_desc))


def _levels(rng: np.random.Generator, size: float) -> Levels:
    jit = lambda: size * rng.uniform(0.96, 1.04)  # noqa: E731 - per-value jitter
    names, seg, top, bh, dh, dep, blr, spl, spa, spt, lam = ([] for _ in range(11))
    L = 0.0
    for spec in LEVEL_TABLE:
        h = spec.body_h * jit()
        # 15% of discs are degenerated (thinner); lumbar discs are the usual ones.
        disc_factor = rng.uniform(0.55, 0.85) if rng.random() < 0.15 else 1.0
        d = spec.disc_h * jit() * disc_factor
        names.append(spec.name)
        seg.append(spec.name[0])
        top.append(L)
        bh.append(h)
        dh.append(d)
        dep.append(spec.depth * jit())
        blr.append(spec.body_lr * spec.depth * jit())
        spl.append(spec.sp_len * jit())
        spa.append(np.deg2rad(spec.sp_angle + rng.uniform(-5, 5)))
        spt.append(spec.sp_thick * jit())
        lam.append(rng.uniform(4.0, 6.0) * size)
        L += h + d
    arr = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    return Levels(names, seg, arr(top), arr(bh), arr(dh), arr(dep), arr(blr), arr(spl), arr(spa),
                  arr(spt), arr(lam))


def _segment_index(levels: Levels, L: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(levels.top, L, side="right") - 1, 0, len(levels.top) - 1)
    codes = np.array(["CTLS".index(s) for s in levels.segment])
    return codes[idx]


def _level_profile(levels: Levels, L: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A per-level value interpolated between level centres."""
    return np.interp(L, levels.centre, values)


def _centreline(rng: np.random.Generator, L: np.ndarray, segment: np.ndarray, L_centre: float,
                fov_si: float, y_canal: float, z_canal: float) -> tuple[np.ndarray, ...]:
    kappa = np.zeros_like(L)
    for code, letter in enumerate("CTLS"):
        sign, lo, hi = _CURVATURE[letter]
        kappa[segment == code] = sign * rng.uniform(lo, hi)
    kappa = ndimage.gaussian_filter1d(kappa, 15.0 / STEP_MM, mode="nearest")
    theta = np.cumsum(kappa) * STEP_MM
    window = np.abs(L - L_centre) <= fov_si / 2
    theta += np.deg2rad(rng.uniform(-6, 6)) - theta[window].mean()
    y = np.cumsum(np.sin(theta)) * STEP_MM
    z = -np.cumsum(np.cos(theta)) * STEP_MM
    y += y_canal - np.interp(L_centre, L, y)
    z += z_canal - np.interp(L_centre, L, z)
    return theta, y, z


def _fov_centre(rng: np.random.Generator, region: str, levels: Levels, fov_si: float,
                conus_tip: float) -> float:
    """L of the field of view's centre, as a technologist would plan it."""
    if region == "cervical":
        top = rng.uniform(-12.0, 3.0)  # top edge between the C1 arch and the top of C2
        return top + fov_si / 2
    if region == "thoracic":
        lo, _ = levels.span("T6", "T6")
        _, hi = levels.span("T8", "T8")
        return rng.uniform(lo, hi)
    # lumbar: centred around L3-L4, keeping at least 40 mm of cord above the conus tip
    centre = rng.uniform(*levels.span("L3", "L4"))
    return min(centre, conus_tip - 40.0 + fov_si / 2)


def _cord(rng: np.random.Generator, L: np.ndarray, levels: Levels, segment: np.ndarray,
          sac: Tube, conus_tip: float) -> Tube:
    size = rng.uniform(0.88, 1.12)
    centres = np.concatenate([[-25.0], levels.centre])
    ap = np.concatenate([[5.2], [s.cord_ap for s in LEVEL_TABLE]]) * size * rng.uniform(0.93, 1.07)
    lr = np.concatenate([[6.8], [s.cord_lr for s in LEVEL_TABLE]]) * size * rng.uniform(0.93, 1.07)
    ra = np.interp(L, centres, ap)
    rb = np.interp(L, centres, lr)
    taper_len = rng.uniform(22.0, 35.0)
    taper = np.clip((conus_tip - L) / taper_len, 0, 1) ** 0.6
    # The table's zeros below L2 would shrink the conus early: keep the L1 value until the taper.
    ra = np.where(L < conus_tip, np.maximum(ra, ap[levels.index("L1") + 1]), 0) * taper
    rb = np.where(L < conus_tip, np.maximum(rb, lr[levels.index("L1") + 1]), 0) * taper
    # The cord lies slightly anterior in the sac (more so in thoracic kyphosis).
    offset = np.choose(segment, [rng.uniform(-1.2, -0.3), rng.uniform(-1.8, -0.5), 0.0, 0.0])
    offset = ndimage.gaussian_filter1d(offset.astype(np.float64), 10 / STEP_MM, mode="nearest")
    cu = np.interp(L, sac.L, sac.cu) + offset + smooth_profile(rng, L, 0.3, (60, 200))
    cv = rng.uniform(-0.4, 0.4) + smooth_profile(rng, L, 0.3, (60, 200))
    # Never touch the dura in a healthy cord: keep at least 1 mm of CSF around it.
    sac_ra = np.interp(L, sac.L, sac.ra)
    sac_rb = np.interp(L, sac.L, sac.rb)
    ra = np.minimum(ra, np.maximum(sac_ra - np.abs(cu - np.interp(L, sac.L, sac.cu)) - 1.0, 0))
    rb = np.minimum(rb, np.maximum(sac_rb - np.abs(cv) - 1.0, 0))
    return Tube(L, cu, cv, ra, rb)


def _sac(rng: np.random.Generator, L: np.ndarray, segment: np.ndarray, canal_ap: np.ndarray,
         canal_lr: np.ndarray, sac_end: float) -> tuple[Tube, np.ndarray]:
    fat = rng.uniform(0.7, 1.4)
    e_ant, e_post, e_lat = (np.choose(segment, [_EPIDURAL[c][n] for c in "CTLS"]) * fat
                            for n in range(3))
    smooth = lambda a: ndimage.gaussian_filter1d(a.astype(np.float64), 12 / STEP_MM, mode="nearest")  # noqa: E731
    e_ant, e_post, e_lat = smooth(e_ant), smooth(e_post), smooth(e_lat)
    ra = canal_ap - (e_ant + e_post) / 2
    rb = canal_lr - e_lat
    cu = (e_ant - e_post) / 2
    taper = np.sqrt(np.clip((sac_end - L) / 20.0, 0, 1))
    return Tube(L, cu, np.zeros_like(L), ra * taper, rb * taper), e_ant


def _roots(rng: np.random.Generator, L: np.ndarray, sac: Tube, cord: Tube, conus_tip: float,
           sac_end: float) -> list[Tube]:
    """Filum terminale and cauda equina roots, from the conus to the end of the sac."""
    below = (L > conus_tip - 8) & (L < sac_end)
    sac_cu, _, sac_ra, sac_rb = sac.at(L)
    cord_cu = np.interp(conus_tip - 8, cord.L, cord.cu)
    roots = []
    filum_r = np.where(below, rng.uniform(0.5, 0.8), 0.0)
    roots.append(Tube(L, sac_cu + 0.2 * sac_ra, np.zeros_like(L), filum_r, filum_r))
    spread = np.clip((L - conus_tip + 8) / 45.0, 0, 1)  # roots fan out below the conus
    for _ in range(int(rng.integers(8, 13))):
        tu = rng.uniform(0.05, 0.75)  # dorsal layering in a supine patient
        tv = rng.uniform(-0.75, 0.75)
        cu = cord_cu + spread * (sac_cu + tu * sac_ra - cord_cu)
        cv = spread * tv * sac_rb
        r = np.where(below, rng.uniform(0.45, 0.85), 0.0)
        roots.append(Tube(L, cu, cv, r, r))
    return roots


def _soft_tissue(rng: np.random.Generator, L: np.ndarray, levels: Levels, segment: np.ndarray,
                 canal_ap: np.ndarray) -> SoftTissue:
    bmi = rng.uniform(0, 1)
    per_segment = {  # (skin_post, fat_post, skin_ant beyond the body front, fat_ant, half-width)
        "C": (48 + 14 * bmi, 3 + 8 * bmi, 50 + 15 * bmi, 3 + 6 * bmi, 55 + 12 * bmi),
        "T": (50 + 20 * bmi, 5 + 18 * bmi, 120 + 50 * bmi, 6 + 20 * bmi, 150 + 40 * bmi),
        "L": (60 + 35 * bmi, 8 + 30 * bmi, 90 + 90 * bmi, 10 + 40 * bmi, 140 + 50 * bmi),
        "S": (55 + 30 * bmi, 10 + 30 * bmi, 90 + 90 * bmi, 10 + 40 * bmi, 150 + 50 * bmi),
    }
    values = np.array([per_segment[s] for s in levels.segment])
    # Smooth the segment steps (neck to chest, chest to abdomen) over a few centimetres.
    prof = [ndimage.gaussian_filter1d(_level_profile(levels, L, values[:, n]), 25 / STEP_MM, mode="nearest")
            for n in range(5)]
    prof = [p * (1 + smooth_profile(rng, L, 0.03, (150, 400))) for p in prof]
    front = canal_ap + _level_profile(levels, L, np.maximum(levels.depth, 10.0))
    skin_ant = front + prof[2]
    # Fat planes between the paraspinal muscle groups, well apart so that they never cross.
    n_planes = int(rng.integers(1, 4))
    depths = (np.arange(n_planes) + rng.uniform(0.3, 0.7, n_planes)) / n_planes * 0.7 + 0.2
    fascia = [(float(d), rng.uniform(0.5, 2.5), 2 * np.pi / rng.uniform(80, 220), rng.uniform(0, 2 * np.pi),
               rng.uniform(0.5, 1.1)) for d in depths]
    airway = None
    t3_mid = levels.centre[levels.index("T3")]
    if L[0] < t3_mid:
        gap = np.interp(L, [L[0], levels.centre[levels.index("C7")], t3_mid], [8, 10, 25]) * rng.uniform(0.8, 1.3)
        # The trachea leaves the field of the spine anteriorly below T3: taper it off there.
        fade = np.sqrt(np.clip((t3_mid - L) / 30.0, 0, 1))
        r_ap = rng.uniform(6.0, 10.0) * fade
        r_lr = rng.uniform(7.0, 10.0) * fade
        airway = Tube(L, -(front + gap + r_ap), np.zeros_like(L), r_ap, r_lr)
    vessels = _great_vessels(rng, L, levels, front)
    lung_span = (levels.top[levels.index("T1")] - 15, levels.span("T10", "T11")[1])
    return SoftTissue(prof[0], prof[1], skin_ant, prof[3], prof[4], fascia, airway, vessels,
                      lung_span, rng.uniform(22.0, 32.0))


def _great_vessels(rng: np.random.Generator, L: np.ndarray, levels: Levels,
                   front: np.ndarray) -> list[Tube]:
    """Descending aorta (left) and inferior vena cava (right): dark flow voids on T1."""
    t4 = levels.centre[levels.index("T4")]
    l4 = levels.centre[levels.index("L4")]
    r_ao = np.interp(L, [t4, levels.centre[levels.index("T12")], l4], [12.5, 10.5, 9.0]) * rng.uniform(0.85, 1.15)
    r_ao = np.where((L > t4) & (L < l4), r_ao, 0.0)
    aorta = Tube(L, -(front + r_ao + 2.0), np.full_like(L, rng.uniform(8.0, 18.0)), r_ao, r_ao)
    t11 = levels.centre[levels.index("T11")]
    r_ivc = np.where((L > t11) & (L < l4), rng.uniform(8.0, 11.0), 0.0)
    ivc = Tube(L, -(front + r_ivc + 5.0), np.full_like(L, -rng.uniform(12.0, 20.0)), r_ivc, r_ivc)
    return [aorta, ivc]


def draw_spine(rng: np.random.Generator, region: str, fov_si: float, fov_ap: float) -> Spine:
    """Draw a healthy spine and place it in a field of view of fov_si x fov_ap mm (grid frame
    centred on the field of view)."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}")
    levels = _levels(rng, rng.uniform(0.9, 1.1))
    L = np.arange(-60.0, levels.top[-1] + levels.body_h[-1] + 80.0, STEP_MM)
    segment = _segment_index(levels, L)
    canal_scale = rng.uniform(0.9, 1.1)
    centres = levels.centre
    canal_ap = _level_profile(levels, L, np.array([s.canal_ap for s in LEVEL_TABLE])) * canal_scale
    canal_lr = _level_profile(levels, L, np.array([s.canal_lr for s in LEVEL_TABLE])) * canal_scale
    l1, l2 = levels.index("L1"), levels.index("L2")
    conus_tip = float(np.clip(levels.top[l1] + levels.body_h[l1] + rng.normal(0, 10),
                              centres[levels.index("T12")], levels.span("L2", "L2")[1]))
    sac_end = float(centres[levels.index("S2")] + rng.uniform(-6, 6))
    sac, epidural_ant = _sac(rng, L, segment, canal_ap, canal_lr, sac_end)
    cord = _cord(rng, L, levels, segment, sac, conus_tip)
    roots = _roots(rng, L, sac, cord, conus_tip, sac_end)
    soft = _soft_tissue(rng, L, levels, segment, canal_ap)
    L_centre = _fov_centre(rng, region, levels, fov_si, conus_tip)
    z_canal = rng.uniform(-0.04, 0.04) * fov_si
    theta, y, z = _centreline(rng, L, segment, L_centre, fov_si, 0.0, z_canal)
    # The whole back lies inside the field of view (the spine coil is behind it), with some air
    # behind its most posterior point.
    window = np.abs(L - L_centre) <= fov_si / 2 + 20
    back = y[window] + soft.skin_post[window] * np.cos(theta[window])
    y += fov_ap / 2 - rng.uniform(5.0, 30.0) - back.max()
    x = (rng.uniform(-3.0, 3.0) + np.tan(np.deg2rad(rng.uniform(-3, 3))) * (L - L_centre)
         + smooth_profile(rng, L, rng.uniform(0, 2.5), (150, 400)))
    return Spine(region, L, levels, canal_ap, canal_lr, sac, cord, roots, conus_tip, sac_end,
                 segment, epidural_ant, theta, y, z, x, float(np.deg2rad(rng.uniform(-4, 4))), soft,
                 meta={"conus_tip_L": conus_tip, "fov_centre_L": L_centre})
