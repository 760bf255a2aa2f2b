#!/usr/bin/env python
"""Realism check of the phantom generator against real spinal MRI (writes a table and a figure).

Compares image statistics of the real cervical T1w scan of sct_testing_data (1 mm isotropic,
RAS, no contrast, manual cord mask), resliced to a clinical sagittal grid (0.5 x 0.5 mm
in-plane, 3.3 mm slices along left-right, slab-averaged from 5 sub-slices like the phantoms),
with the same statistics measured on phantoms (mean and range over N cases, the tumour types
and each type's usual regions cycled). The tumour-free statistics are measured on the healthy twin of each phantom (same
seed and region, `healthy=True`: same anatomy, acquisition and noise without the lesion), so
that cysts and tumours do not bias cord and CSF values; tumour contrast is measured on the
tumour cases themselves. Background noise shape uses the axial T1w slab of spine-generic
sub-unf01, whose field of view includes air (the sct_testing_data crop has none).

Measurements (same code for real and phantom images), on the "central" sagittal slices, i.e.
those whose cord area is at least half the largest:
- cord: mean inside the cord mask eroded by one pixel in-plane;
- CSF: median of a shell 0.75-2.0 mm (in-plane) outside the cord mask. The canal is not
  segmented; the shell is thin enough to stay mostly in the subarachnoid space but its outer
  part touches the dura and epidural fat in a narrow canal, so CSF is over-estimated a little;
- fat: 99th percentile within 35 mm (in-plane) of the cord on the central slices +/- 3 (the
  brightest tissue near the spine: epidural, intermuscular and subcutaneous fat, fatty marrow);
- noise: sigma = 1.4826 * MAD of the residual image - 3x3 in-plane mean (x sqrt(9/8)) inside the
  eroded cord; reported relative to the cord mean, and as cord SNR = cord / sigma;
- cord AP diameter: mean number of cord pixels per row on the central slice x pixel size;
- background (air far from the body: below 10% of the 99th percentile after a 2 mm Gaussian,
  eroded 5 mm): mean / sd and
  skewness (Rayleigh: 1.91 and 0.63);
- tumour / cord: mean tumour signal over the mean cord signal away from it, per type.

    .venv/bin/python scripts/phantom_realism.py [--cases 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from scipy import ndimage, stats  # noqa: E402

from batseg.labels import TUMOUR_CLASSES, class_by_value  # noqa: E402
from batseg.phantoms import generate_case  # noqa: E402
from batseg.phantoms.acquisition import BASE_DIRECTION  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = ROOT.parent / "shared" / "data" / "real-spine-mri"
REAL_T1 = "sct_testing_data/t1/t1w.nii.gz"
REAL_T1_CORD = "sct_testing_data/t1/t1w_seg-manual.nii.gz"
REAL_BACKGROUND = "spine-generic_sub-unf01/sub-unf01_T1w.nii.gz"
DOC = ROOT / "docs" / "phantoms.md"
FIGURE = ROOT / "docs" / "figures" / "phantom_vs_real.png"
TABLE_START, TABLE_END = "<!-- realism-table:start -->", "<!-- realism-table:end -->"
PIXEL_MM, SLICE_MM, N_SUB = 0.5, 3.3, 5


# ----- reslicing -------------------------------------------------------------------------------
def reslice_sagittal(image: sitk.Image, mask: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask on a clinical sagittal grid ([k, j, i]: left-right, superior-inferior,
    anterior-posterior), slabs averaged from N_SUB sub-slices; the mask is its >= 50% coverage."""
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([c0 * (s - 1) for c0, s in zip(c, image.GetSize())])
                        for c in np.ndindex(2, 2, 2)])
    local = corners @ BASE_DIRECTION  # coordinates along the target index axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    fine = SLICE_MM / N_SUB
    spacing = (PIXEL_MM, PIXEL_MM, fine)
    size = [int(np.floor((h - l) / s)) + 1 for l, h, s in zip(lo, hi, spacing)]
    size[2] -= size[2] % N_SUB
    resampler = sitk.ResampleImageFilter()
    resampler.SetOutputDirection(tuple(BASE_DIRECTION.ravel()))
    resampler.SetOutputOrigin(tuple(BASE_DIRECTION @ lo))
    resampler.SetOutputSpacing(spacing)
    resampler.SetSize(size)
    resampler.SetInterpolator(sitk.sitkLinear)
    out = []
    for img in (image, mask):
        arr = sitk.GetArrayFromImage(resampler.Execute(sitk.Cast(img, sitk.sitkFloat32)))
        out.append(arr.reshape(-1, N_SUB, *arr.shape[1:]).mean(axis=1))
    return out[0], out[1] >= 0.5


# ----- measurements ----------------------------------------------------------------------------
def _in_plane(fn, volume: np.ndarray, **kw) -> np.ndarray:
    return np.stack([fn(s, **kw) for s in volume])


def central_slices(cord: np.ndarray) -> np.ndarray:
    area = cord.sum(axis=(1, 2))
    return np.nonzero(area >= 0.5 * area.max())[0]


def measure(image: np.ndarray, cord: np.ndarray, pixel: float) -> dict:
    """Tissue contrasts and noise of one volume [k, j, i] with its cord mask."""
    ks = central_slices(cord)
    img, crd = image[ks].astype(np.float64), cord[ks]
    core = _in_plane(ndimage.binary_erosion, crd, iterations=1)
    outside = _in_plane(lambda s: ndimage.distance_transform_edt(~s) * pixel, crd)
    shell = (outside > 0.75) & (outside <= 2.0)
    cord_mean = float(img[core].mean())
    csf = float(np.median(img[shell]))
    around = slice(max(ks.min() - 3, 0), ks.max() + 4)
    near = _in_plane(lambda s: ndimage.distance_transform_edt(~s) * pixel, cord[around]) <= 35.0
    fat = float(np.percentile(image[around][near], 99))
    residual = img - _in_plane(ndimage.uniform_filter, img, size=3)
    r = residual[core]
    sigma = 1.4826 * float(np.median(np.abs(r - np.median(r)))) * np.sqrt(9 / 8)
    mid = crd[len(ks) // 2]
    rows = mid.sum(axis=1)
    return {"cord/CSF": cord_mean / csf, "cord/fat": cord_mean / fat, "CSF/fat": csf / fat,
            "noise sd / cord": sigma / cord_mean, "cord SNR": cord_mean / sigma,
            "cord AP diameter (mm)": float(rows[rows > 0].mean() * pixel)}


def background_shape(image: np.ndarray, pixel_mm: tuple[float, float, float]) -> dict:
    """Mean/sd and skewness of the air far from the body (Rayleigh: 1.91, 0.63)."""
    img = image.astype(np.float64)
    smooth = ndimage.gaussian_filter(img, [2.0 / p for p in pixel_mm])
    air = smooth < 0.1 * np.percentile(img, 99)
    depth = ndimage.distance_transform_edt(air, sampling=pixel_mm)
    bg = img[depth >= 5.0]
    if bg.size < 500:
        return {}
    return {"background mean/sd": float(bg.mean() / bg.std()), "background skewness": float(stats.skew(bg))}


def tumour_contrast(image: np.ndarray, label: np.ndarray, cord: np.ndarray) -> float:
    """Mean tumour signal over the mean signal of the cord more than 10 mm away from it."""
    far = ndimage.distance_transform_edt(label == 0) > 10
    ref = cord.astype(bool) & far
    return float(image[label > 0].mean() / image[ref].mean()) if ref.any() else float("nan")


# ----- data ------------------------------------------------------------------------------------
def real_statistics(real_dir: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    image = sitk.ReadImage(str(real_dir / REAL_T1))
    mask = sitk.ReadImage(str(real_dir / REAL_T1_CORD))
    img, cord = reslice_sagittal(image, mask)
    stats_ = measure(img, cord, PIXEL_MM)
    bg_image = sitk.ReadImage(str(real_dir / REAL_BACKGROUND))
    stats_.update(background_shape(sitk.GetArrayFromImage(bg_image), bg_image.GetSpacing()[::-1]))
    return stats_, img, cord


# Regions cycled per tumour type (each type's usual sites, METHOD.md section 6).
REGIONS = {1: ("thoracic", "cervical"), 2: ("cervical", "lumbar", "thoracic"),
           3: ("cervical", "thoracic"), 4: ("thoracic", "cervical")}


def phantom_statistics(n: int, seed: int) -> tuple[list[dict], list[dict], list, float]:
    rows, contrasts, shown = [], [], {}
    start = time.perf_counter()
    timings = []
    for i in range(n):
        tumour_type = TUMOUR_CLASSES[i % 4].value
        regions = REGIONS[tumour_type]
        t0 = time.process_time()  # CPU time: the wall clock depends on the machine's load
        case = generate_case(seed + i, [tumour_type], regions[(i // 4) % len(regions)])
        timings.append(time.process_time() - t0)
        twin = generate_case(seed + i, region=case.meta["region"], healthy=True)
        img = sitk.GetArrayFromImage(twin.image)
        pixel = twin.image.GetSpacing()[0]
        row = measure(img, sitk.GetArrayFromImage(twin.cord).astype(bool), pixel)
        row.update(background_shape(img, twin.image.GetSpacing()[::-1]))
        rows.append(row)
        label = sitk.GetArrayFromImage(case.label)
        contrasts.append({"type": tumour_type, "tumour/cord": tumour_contrast(
            sitk.GetArrayFromImage(case.image).astype(np.float64), label, sitk.GetArrayFromImage(case.cord))})
        shown.setdefault(tumour_type, case)
    print(f"{n} phantoms (+ healthy twins) in {time.perf_counter() - start:.1f} s; generate_case "
          f"{np.mean(timings):.2f} s CPU per case on average (min {np.min(timings):.2f}, "
          f"max {np.max(timings):.2f})")
    return rows, contrasts, [shown[t] for t in sorted(shown)], float(np.mean(timings))


# ----- outputs ---------------------------------------------------------------------------------
def table(real: dict, rows: list[dict], contrasts: list[dict], n: int, seed: int) -> str:
    keys = ["cord/CSF", "cord/fat", "CSF/fat", "noise sd / cord", "cord SNR", "cord AP diameter (mm)",
            "background mean/sd", "background skewness"]
    lines = [f"| statistic | real T1w (resliced) | phantoms, mean [min, max] over {n} cases (seed {seed}) |",
             "|---|---|---|"]
    for key in keys:
        values = np.array([r[key] for r in rows if key in r])
        real_value = f"{real[key]:.3f}" if key in real else "n/a"
        lines.append(f"| {key} | {real_value} | {values.mean():.3f} [{values.min():.3f}, {values.max():.3f}] |")
    for tc in TUMOUR_CLASSES:
        values = np.array([c["tumour/cord"] for c in contrasts if c["type"] == tc.value])
        if values.size:
            lines.append(f"| {tc.key} / cord | n/a (no Gd data) | {values.mean():.3f} "
                         f"[{values.min():.3f}, {values.max():.3f}] |")
    return "\n".join(lines)


def write_table(doc: Path, text: str, command: str, markers: tuple[str, str] = (TABLE_START, TABLE_END)) -> None:
    """Replace the block between the two marker comments of `doc` with `text`."""
    start, end = markers
    content = doc.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{doc} lacks the {start} / {end} markers")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    block = f"{start}\nGenerated by `{command}`.\n\n{text}\n{end}"
    doc.write_text(head + block + tail)


def _contours(ax, mask: np.ndarray, color, width: float = 0.8) -> None:
    if mask.any():
        ax.contour(mask.astype(float), [0.5], colors=[color], linewidths=width)


def _crop(case, extent_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = sitk.GetArrayFromImage(case.image).astype(float)
    label = sitk.GetArrayFromImage(case.label)
    cord = sitk.GetArrayFromImage(case.cord)
    k = int(np.argmax((label > 0).sum(axis=(1, 2))))
    jj, ii = np.nonzero(label[k])
    px = case.image.GetSpacing()[0]
    hj, hi = int(extent_mm[0] / px / 2), int(extent_mm[1] / px / 2)
    cj, ci = int(jj.mean()), int(ii.mean())
    sl = (slice(max(cj - hj, 0), cj + hj), slice(max(ci - hi, 0), ci + hi))
    return img[k][sl], label[k][sl], cord[k][sl]


def figure(real_img: np.ndarray, real_cord: np.ndarray, cases: list, path: Path) -> None:
    k = int(np.argmax(real_cord.sum(axis=(1, 2))))
    extent = (real_img.shape[1] * PIXEL_MM, real_img.shape[2] * PIXEL_MM)
    fig, axes = plt.subplots(2, 1 + len(cases), figsize=(3.2 * (1 + len(cases)), 7.4))
    ax = axes[0, 0]
    ax.imshow(real_img[k], cmap="gray", vmin=np.percentile(real_img, 1), vmax=np.percentile(real_img, 99.5))
    _contours(ax, real_cord[k], "cyan", 0.6)
    ax.set_title("real T1w (no Gd), resliced\n0.5 x 0.5 x 3.3 mm, cord in cyan", fontsize=8)
    axes[1, 0].axis("off")
    axes[1, 0].text(0, 0.5, "Top: crops of the same size\n(%.0f x %.0f mm) around the tumour.\n"
                    "Bottom: whole field of view.\nLabels outlined in class colours,\ncord in cyan.\n"
                    "Synthetic phantoms;\nnot for clinical use." % extent, fontsize=8, va="center")
    for n, case in enumerate(cases, start=1):
        tumour_type = case.meta["tumour_types"][0]
        color = class_by_value(tumour_type).color
        img, label, cord = _crop(case, extent)
        vmin, vmax = np.percentile(img, 1), np.percentile(img, 99.5)
        axes[0, n].imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
        _contours(axes[0, n], cord > 0, "cyan", 0.5)
        _contours(axes[0, n], label > 0, color)
        acq = case.meta["acquisition"]
        axes[0, n].set_title(f"phantom: {class_by_value(tumour_type).name}\n{case.meta['region']}, "
                             f"{acq['pixel_mm']:.2f} x {acq['pixel_mm']:.2f} x {acq['slice_spacing_mm']:.1f} mm",
                             fontsize=8)
        full = sitk.GetArrayFromImage(case.image).astype(float)
        lab = sitk.GetArrayFromImage(case.label)
        kk = int(np.argmax((lab > 0).sum(axis=(1, 2))))
        axes[1, n].imshow(full[kk], cmap="gray", vmin=np.percentile(full, 1), vmax=np.percentile(full, 99.5))
        _contours(axes[1, n], lab[kk] > 0, color, 0.6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Phantom realism check (table + figure).")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    args = parser.parse_args(argv)
    real, real_img, real_cord = real_statistics(args.real_dir)
    rows, contrasts, shown, _ = phantom_statistics(args.cases, args.seed)
    text = table(real, rows, contrasts, args.cases, args.seed)
    print(text)
    write_table(args.doc, text, f"python scripts/phantom_realism.py --cases {args.cases} --seed {args.seed}")
    figure(real_img, real_cord, shown, args.figure)
    print(f"wrote {args.doc} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
