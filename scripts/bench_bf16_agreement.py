"""Labels with bfloat16 autocast on the CPU against fp32, per case: the tolerance check of issue 19.

The issue allows reduced precision only where the labels stay identical to fp32 or within Dice
0.99 per class with every lesion kept. This runs the model twice per case with PyTorch on the CPU
(fp32, and bfloat16 autocast as scripts/bench_paper_levers.py runs it) and prints, per case, the
voxels that differ, the per-class Dice between the two label maps (before postprocessing) and the
two times.

    python scripts/bench_bf16_agreement.py --images WORK_DIR/test/Dataset502_BATsegPhantomsTest/imagesTr \\
        [--model MODEL.batseg] [--cases 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_paper_levers import _bf16  # noqa: E402  (the same bfloat16 runner as the lever benchmark)

from batseg.inference.predictor import Predictor  # noqa: E402
from batseg.models import resolve_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of images (*.nii.gz)")
    parser.add_argument("--model", default=None, help="model file or name (default: the shipped model)")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = resolve_model(args.model)
    fp32 = Predictor(model, device="cpu", backend="torch", threads=args.threads)
    bf16 = Predictor(model, device="cpu", backend="torch", threads=args.threads)
    _bf16(bf16.backend)
    print("| case | voxels differing | Dice bf16 vs fp32 per class present | fp32 s | bf16 s |")
    print("|---|---|---|---|---|")
    for path in sorted(args.images.glob("*.nii.gz"))[: args.cases]:
        image = sitk.ReadImage(str(path))
        start = time.perf_counter()
        a = sitk.GetArrayFromImage(fp32.predict(image).labels)
        middle = time.perf_counter()
        b = sitk.GetArrayFromImage(bf16.predict(image).labels)
        end = time.perf_counter()
        dice = {v: 2 * int(((a == v) & (b == v)).sum()) / int((a == v).sum() + (b == v).sum())
                for v in range(1, 5) if (a == v).any() or (b == v).any()}
        cells = ", ".join(f"{v}: {d:.4f}" for v, d in dice.items())
        print(f"| {path.name} | {int((a != b).sum())} | {cells} | {middle - start:.1f} | {end - middle:.1f} |")


if __name__ == "__main__":
    main()
