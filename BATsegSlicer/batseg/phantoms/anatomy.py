"""Paints the healthy anatomy of one sagittal sub-slice as tissue ids.

The image is simulated from thin sub-slices (about 1 mm apart) inside each acquired slab. All
sub-slices share the same in-plane grid, so everything that depends only on the in-plane
position (spine-frame coordinates L and u, vertebral level, body, arch and foramen geometry,
tube profiles) is computed once per case in `AnatomyPainter.__init__`; painting one sub-slice
at left-right position x then costs a few dozen array operations (`paint`).

Approximations, on purpose: the spine frame is first order in u (exact on the axis, fine within
the few centimetres where the spine is); the skin is rounded laterally by a parabola; the
axial rotation of the anatomy relative to the slices is applied to first order (a few degrees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batseg.phantoms import tissues as T
from batseg.phantoms.shapes import Tube, TubeSection
from batseg.phantoms.spine import Spine

CORTEX_MM = 0.8  # cortical shell of the vertebral bodies and bony tubes


@dataclass(frozen=True)
class Frame:
    """The in-plane grid in spine coordinates: 2D float32 arrays of shape [nj, ni]."""

    L: np.ndarray
    u: np.ndarray
    xc: np.ndarray  # left-right position of the canal centre


def make_frame(spine: Spine, y: np.ndarray, z: np.ndarray) -> Frame:
    """Spine-frame coordinates of the grid points (y columns, z rows; grid frame, mm)."""
    z_desc, L_desc = spine.axis_z[::-1], spine.L[::-1]
    L_axis = np.interp(z, z_desc, L_desc)
    y_axis = np.interp(L_axis, spine.L, spine.axis_y)
    theta = np.interp(L_axis, spine.L, spine.theta)
    dy = y[None, :] - y_axis[:, None]
    u = dy * np.cos(theta)[:, None]
    L = L_axis[:, None] + dy * np.sin(theta)[:, None]
    xc = np.interp(L, spine.L, spine.axis_x)
    return Frame(L.astype(np.float32), u.astype(np.float32), xc.astype(np.float32))


@dataclass
class SubSlice:
    """One painted sub-slice: tissue ids, intradural and cord masks, and its u, v maps."""

    tissue: np.ndarray
    sac: np.ndarray
    cord: np.ndarray
    u: np.ndarray
    v: np.ndarray


class AnatomyPainter:
    """Precomputes the in-plane geometry of one case and paints sub-slices."""

    def __init__(self, spine: Spine, frame: Frame, cord: Tube, rng: np.random.Generator) -> None:
        self.spine, self.frame = spine, frame
        self.shape = frame.L.shape
        L, u = frame.L, frame.u
        at = lambda p: np.interp(L, spine.L, p).astype(np.float32)  # noqa: E731
        self.canal_ap, self.canal_lr = at(spine.canal_ap), at(spine.canal_lr)
        self._canal_end(spine)
        soft = spine.soft
        self.skin_post, self.fat_post = at(soft.skin_post), at(soft.fat_post)
        self.skin_ant, self.fat_ant = at(soft.skin_ant), at(soft.fat_ant)
        self.inv_2hw = (0.5 / at(soft.half_width)).astype(np.float32)
        self.front = -(self.canal_ap + at(np.interp(spine.L, spine.levels.centre,
                                                    np.maximum(spine.levels.depth, 10.0))))
        self._fascia(soft)
        self._column(spine)
        self._arches(spine, rng)
        self._lateral(spine, rng)
        margin = 6.0
        self.sac = spine.sac.section(L, u, margin)
        self.cord = cord.section(L, u, margin)
        self.roots = [s for s in (t.section(L, u, margin) for t in spine.roots) if s is not None]
        self.airway = soft.airway.section(L, u, margin) if soft.airway is not None else None
        self.vessels = [s for s in (t.section(L, u, margin) for t in soft.vessels) if s is not None]
        self.bones = [s for s in (t.section(L, u, margin) for t in self._c1_bones(spine)) if s is not None]
        lo, hi = soft.lung_span
        self.lung_zone = (L > lo) & (L < hi) & (u < self.canal_ap + 3) & (u > -self.skin_ant + self.fat_ant + 20)
        self.lung_v = soft.lung_v
        self.alpha = np.float32(spine.axial_rotation)
        rows, cols = np.nonzero((self.canal_ap > 0) & (np.abs(u) < self.canal_ap + 1.0))
        self.canal_box = _box(rows, cols, self.shape)
        if self.canal_box is not None:
            self.canal_sac_cu = at(spine.sac.cu)[self.canal_box]

    # ----- one-off geometry -------------------------------------------------------------
    def _canal_end(self, spine: Spine) -> None:
        """The sacral canal closes at the bottom of S4; no canal below."""
        end = spine.levels.span("S4", "S4")[1]
        closed = self.frame.L > end
        self.canal_ap[closed] = 0
        self.canal_lr[closed] = 0

    def _fascia(self, soft) -> None:
        L, u = self.frame.L, self.frame.u
        muscle_depth = self.skin_post - self.fat_post - self.canal_ap
        mask = np.zeros(self.shape, bool)
        for frac, amp, k, phase, thick in soft.fascia:
            depth = self.canal_ap + frac * muscle_depth + amp * np.sin(k * L + phase)
            mask |= np.abs(u - depth) < thick / 2
        self.fascia = mask & (u > self.canal_ap + 8)

    def _level_lookup(self, spine: Spine, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lv = spine.levels
        n = np.clip(np.searchsorted(lv.top, L, side="right") - 1, 0, len(lv.top) - 1)
        return n, (L - lv.top[n]).astype(np.float32)

    def _column(self, spine: Spine) -> None:
        """Vertebral bodies (rounded boxes), discs, cortical shell and basivertebral vein."""
        lv, L, u = spine.levels, self.frame.L, self.frame.u
        n, t = self._level_lookup(spine, L)
        H = lv.body_h[n].astype(np.float32)
        W = np.interp(L, lv.centre, np.maximum(lv.depth, 10.0)).astype(np.float32)
        self.body_hw = np.interp(L, lv.centre, np.maximum(lv.body_lr, 8.0)).astype(np.float32)
        has_body = (lv.depth[n] > 0) & (L >= lv.top[1] - 0.5 * lv.disc_h[0])
        u_mid = -(self.canal_ap + W / 2)
        half = W / 2
        col = ((u - u_mid) / half) ** 4
        col_in = ((u - u_mid) / np.maximum(half - CORTEX_MM, 1)) ** 4
        dL = (t - H / 2) / np.maximum(H / 2, 1)
        dL_in = (t - H / 2) / np.maximum(H / 2 - CORTEX_MM, 1)
        in_body_span = has_body & (t < H)
        in_disc_span = has_body & (t >= H) & (n < len(lv.top) - 1)
        big = np.float32(10.0)
        self.col = np.where(has_body & (self.canal_ap > 0), col, big).astype(np.float32)
        self.body = np.where(in_body_span, col + dL ** 8, big).astype(np.float32)
        self.body_in = np.where(in_body_span, col_in + dL_in ** 8, big).astype(np.float32)
        self.disc_span = in_disc_span
        self.vein = in_body_span & (np.abs(t - H / 2) < 1.0) & (u > -self.canal_ap - 0.3 * W)
        rows, cols = np.nonzero(self.col < 1.5)
        self.column_box = _box(rows, cols, self.shape)

    def _arches(self, spine: Spine, rng: np.random.Generator) -> None:
        """Laminae and spinous processes: sheared bars behind the canal, sloping caudally."""
        lv, L, u = spine.levels, self.frame.L, self.frame.u
        angle = np.interp(L, lv.centre, lv.sp_angle)
        w = u - self.canal_ap  # depth behind the posterior canal wall
        Ls = L - np.clip(w, 0, None) * np.tan(angle)
        start = lv.top + 0.1 * lv.body_h
        m = np.clip(np.searchsorted(start, Ls, side="right") - 1, 0, len(start) - 1)
        a = Ls - start[m]
        # Thickness perpendicular to the process, hence / cos along the axis.
        thick = lv.sp_thick[m] / np.cos(lv.sp_angle[m]) * (1 - 0.35 * np.clip(w / lv.sp_len[m], 0, 1))
        in_bar = (a >= 0) & (a <= thick) & (w >= 0) & (w <= lv.sp_len[m]) & (self.canal_ap > 0)
        lamina = w <= lv.lamina[m]
        self.arch_bone = in_bar
        # A thin cortex only: the processes are narrow and their cortex blurs into the marrow.
        self.arch_cortex = in_bar & ((a < 0.5) | (a > thick - 0.5) | (w > lv.sp_len[m] - 0.8))
        self.arch_lamina = in_bar & lamina
        self.flavum = ~in_bar & (w >= 0) & (w <= lv.lamina[m]) & (self.canal_ap > 0)
        self.interspinous = ~in_bar & (w > lv.lamina[m]) & (w <= lv.sp_len[m]) & (self.canal_ap > 0)
        # Paraspinal muscles lie lateral to the spinous processes; in the midline, between and
        # behind the processes, there are ligaments, fat and small muscles.
        self.midline = ~in_bar & (w > lv.lamina[m]) & (w <= lv.sp_len[m] + rng.uniform(3.0, 10.0)) & (self.canal_ap > 0)
        self.midline_v = np.float32(rng.uniform(4.0, 7.0))
        self.lamina_v = (self.canal_lr * 1.05 + 3.0).astype(np.float32)
        self.spinous_v = np.float32(rng.uniform(3.0, 4.5))
        rows, cols = np.nonzero(in_bar | self.flavum | self.midline)
        self.arch_box = _box(rows, cols, self.shape)

    def _lateral(self, spine: Spine, rng: np.random.Generator) -> None:
        """Pedicles, neural foramina with their roots, articular pillars and facet joints."""
        lv, L, u = spine.levels, self.frame.L, self.frame.u
        n, t = self._level_lookup(spine, L)
        H, D = lv.body_h[n], lv.disc_h[n]
        ap = self.canal_ap
        front_zone = (u >= -ap - 1.0) & (u < 0) & (ap > 0)
        self.pedicle = front_zone & (t >= 0.1 * H) & (t <= 0.6 * H) & (lv.depth[n] > 0)
        self.foramen = front_zone & ~self.pedicle
        root_L = np.where(t < 0.6 * H, -1e3, lv.top[n] + 0.8 * H)
        self.foramen_root = self.foramen & (((L - root_L) / 2.6) ** 2 + ((u + 0.45 * ap) / 2.2) ** 2 < 1)
        facet = np.interp(L, lv.centre, np.where(np.array(lv.segment) == "L", 0.2, 0.75))
        Lf = L - u * facet
        nf, tf = self._level_lookup(spine, Lf)
        joint = np.abs(tf - (lv.body_h[nf] + 0.5 * lv.disc_h[nf])) < 0.8
        self.pillar = (u >= 0) & (u <= ap + 7.0) & (ap > 0)
        self.facet = self.pillar & joint
        self.lat_v0 = (0.85 * self.canal_lr).astype(np.float32)
        self.lat_v1 = (self.canal_lr + rng.uniform(9.0, 13.0)).astype(np.float32)

    def _c1_bones(self, spine: Spine) -> list[Tube]:
        """Anterior arch of the atlas and the dens of C2 (bony tubes)."""
        lv = spine.levels
        c1, c2 = lv.index("C1"), lv.index("C2")
        ap = float(np.interp(lv.centre[c1], spine.L, spine.canal_ap))
        arch = Tube.fusiform(lv.centre[c1], 5.0, -(ap + 8.0), 0.0, 3.5, 9.0)
        dens = Tube.fusiform(lv.top[c2] - 2.0, 9.0, -(ap + 6.0), 0.0, 4.5, 4.5, power=0.3)
        return [arch, dens]

    # ----- per sub-slice ---------------------------------------------------------------
    def paint(self, x: float) -> SubSlice:
        """Tissue ids of the sub-slice at left-right position x (grid frame, mm)."""
        f = self.frame
        v0 = np.float32(x) - f.xc
        u = f.u + self.alpha * v0
        v = v0 - self.alpha * f.u
        t = np.zeros(self.shape, np.uint8)
        self._paint_envelope(t, u, v)
        self._paint_column(t, u, v)
        self._paint_arches(t, v)
        self._paint_lateral(t, u, v)
        sac, cord = self._paint_canal(t, u, v)
        return SubSlice(t, sac, cord, u, v)

    def _paint_envelope(self, t: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        curv = v * v * self.inv_2hw
        post = self.skin_post - curv
        ant = self.skin_ant - curv
        inside = (u < post) & (u > -ant)
        t[inside] = T.MUSCLE
        t[inside & (u < self.front)] = T.VISCERA
        t[inside & self.fascia & (np.abs(v) > self.midline_v + 2)] = T.FAT
        t[inside & ((u > post - self.fat_post) | (u < -ant + self.fat_ant))] = T.FAT
        t[inside & ((u > post - 1.2) | (u < -ant + 1.2))] = T.SKIN
        if self.spine.region == "thoracic" or self.spine.region == "lumbar":
            t[inside & self.lung_zone & (np.abs(v) > self.lung_v)] = T.AIRWAY
        if self.airway is not None:
            _paint_tube(t, self.airway, u, v, T.AIRWAY)
        for vessel in self.vessels:
            _paint_tube(t, vessel, u, v, T.VESSEL)

    def _paint_column(self, t: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        b = self.column_box
        if b is None:
            return
        tb = t[b]
        vv = (v[b] / self.body_hw[b]) ** 2
        vv_in = (v[b] / np.maximum(self.body_hw[b] - CORTEX_MM, 1)) ** 2
        tb[(self.col[b] + vv < 1) & self.disc_span[b]] = T.DISC
        body = self.body[b] + vv < 1
        tb[body] = T.CORTEX
        marrow = self.body_in[b] + vv_in < 1
        tb[marrow] = T.MARROW
        tb[marrow & self.vein[b] & (np.abs(v[b]) < 2.5)] = T.VEIN
        for bone in self.bones:
            d = bone.distance(u[bone.box], v[bone.box])
            tt = t[bone.box]
            tt[d < 0] = T.CORTEX
            tt[d < -CORTEX_MM] = T.MARROW

    def _paint_arches(self, t: np.ndarray, v: np.ndarray) -> None:
        b = self.arch_box
        if b is None:
            return
        tb, av = t[b], np.abs(v[b])
        near = av <= self.lamina_v[b]
        tb[self.flavum[b] & near] = T.FLAVUM
        tb[self.midline[b] & (av < self.midline_v)] = T.INTERSPINOUS
        tb[self.interspinous[b] & (av < 1.0)] = T.LIGAMENT
        bone = self.arch_bone[b] & ((self.arch_lamina[b] & near) | (av <= self.spinous_v))
        tb[bone] = T.ARCH
        tb[bone & self.arch_cortex[b]] = T.CORTEX

    def _paint_lateral(self, t: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        av = np.abs(v)
        lateral = (av > self.lat_v0) & (av < self.lat_v1)
        t[lateral & self.pedicle] = T.MARROW
        t[lateral & self.foramen] = T.FAT
        t[lateral & self.foramen_root] = T.ROOT
        t[lateral & self.pillar] = T.MARROW
        t[lateral & self.facet] = T.LIGAMENT

    def _paint_canal(self, t: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sac_mask = np.zeros(self.shape, bool)
        cord_mask = np.zeros(self.shape, bool)
        if self.canal_box is not None:
            b = self.canal_box
            tb, ub, vb = t[b], u[b], v[b]
            with np.errstate(divide="ignore", invalid="ignore"):
                canal = (ub / self.canal_ap[b]) ** 2 + (vb / self.canal_lr[b]) ** 2 < 1
            # Posterior epidural space: fat; anterior: the (enhancing) venous plexus.
            tb[canal & (ub > self.canal_sac_cu)] = T.EPIDURAL_FAT
            tb[canal & (ub <= self.canal_sac_cu)] = T.PLEXUS
        s = self.sac
        if s is None:
            return sac_mask, cord_mask
        b = s.box
        tb, ub, vb = t[b], u[b], v[b]
        d = s.distance(ub, vb)
        sac = d < 0
        tb[sac] = T.DURA
        tb[d < -0.6] = T.CSF
        sac_mask[b] = sac
        for root in self.roots:
            dr = root.distance(u[root.box], v[root.box])
            tr = t[root.box]
            tr[(dr < 0) & sac_mask[root.box]] = T.ROOT
        if self.cord is not None:
            c = self.cord
            in_cord = c.distance(u[c.box], v[c.box]) < 0
            t[c.box][in_cord] = T.CORD
            cord_mask[c.box] = in_cord
        return sac_mask, cord_mask


def _paint_tube(t: np.ndarray, tube: TubeSection, u: np.ndarray, v: np.ndarray, tissue: int) -> None:
    d = tube.distance(u[tube.box], v[tube.box])
    t[tube.box][d < 0] = tissue


def _box(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    if rows.size == 0:
        return None
    return (slice(max(int(rows.min()) - 2, 0), min(int(rows.max()) + 3, shape[0])),
            slice(max(int(cols.min()) - 2, 0), min(int(cols.max()) + 3, shape[1])))


__all__ = ["AnatomyPainter", "Frame", "SubSlice", "make_frame"]
