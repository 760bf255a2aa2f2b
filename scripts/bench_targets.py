"""Benchmark: BATseg surface distance field, cropped (batseg.targets) vs naive full-patch EDT.

Builds realistic training label patches (two ellipsoidal lesions of about 3 cm3, classes 2
and 4, in a nnU-Net-sized patch), times `surface_distance_field` against the straightforward
method (two scipy EDTs over the whole patch per present class), checks that both give the
same array, and prints the median milliseconds and their ratio, measured in the same run.

Usage: .venv/bin/python scripts/bench_targets.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

from batseg.targets import surface_distance_field

# (patch shape, spacing in mm), both in (z, y, x) = (left-right, anterior-posterior,
# superior-inferior) order for the project's sagittal data.
CASES = (
    ((12, 384, 384), (3.3, 0.47, 0.47)),
    ((16, 160, 160), (3.3, 0.94, 0.94)),
)
# Lesions: (class, centre as a fraction of the patch, semi-axes in mm). 6 x 6 x 20 mm
# semi-axes give 4/3 pi 720 = 3.0 cm3, an elongated intramedullary tumour.
LESIONS = (
    (2, (0.45, 0.35, 0.40), (6.0, 6.0, 20.0)),
    (4, (0.55, 0.70, 0.65), (6.0, 7.0, 17.0)),
)


def lesion_patch(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Label patch with the LESIONS drawn as ellipsoids at their physical size."""
    label = np.zeros(shape, np.uint8)
    grids = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    for value, centre, axes in LESIONS:
        r2 = sum(
            ((g - c * n * s) / a) ** 2
            for g, c, n, s, a in zip(grids, centre, shape, spacing, axes)
        )
        label[r2 <= 1] = value
    return label


def naive_field(label: np.ndarray, spacing: Sequence[float], truncation: float) -> np.ndarray:
    """Full-patch method: EDT of the class and of its complement over the whole patch."""
    out = np.zeros((4,) + label.shape, np.float32)
    for k in range(1, 5):
        m = label == k
        if not m.any():
            continue
        d = np.where(
            m,
            ndimage.distance_transform_edt(m, sampling=spacing),
            -ndimage.distance_transform_edt(~m, sampling=spacing),
        )
        depth = d[m].max()
        t_depth = truncation * depth
        out[k - 1] = np.where(
            m, (d / depth + 1) / 2, np.where(-d <= t_depth, (d / t_depth + 1) / 2, 0.0)
        )
    return out


def median_ms(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method")
    args = parser.parse_args()
    print(f"{'patch':>14} {'spacing':>18} {'t':>3} {'lesion cm3':>11} "
          f"{'cropped ms':>11} {'naive ms':>9} {'speed-up':>9} identical")
    for shape, spacing in CASES:
        label = lesion_patch(shape, spacing)
        volumes = [
            np.count_nonzero(label == v) * float(np.prod(spacing)) / 1000 for v, _, _ in LESIONS
        ]
        for truncation in (1.0, 3.0):
            fast_ms, fast = median_ms(
                lambda: surface_distance_field(label, spacing, truncation=truncation), args.repeats
            )
            slow_ms, slow = median_ms(
                lambda: naive_field(label, spacing, truncation), args.repeats
            )
            print(
                f"{'x'.join(map(str, shape)):>14} {str(spacing):>18} {truncation:>3g} "
                f"{'/'.join(f'{v:.1f}' for v in volumes):>11} {fast_ms:>11.1f} {slow_ms:>9.1f} "
                f"{slow_ms / fast_ms:>8.1f}x {np.array_equal(fast, slow)}"
            )


if __name__ == "__main__":
    main()
