"""Network-level prediction time on a clinical volume's model grid: BATseg vs nnU-Net's predictor.

The GPU target of the inference issue: the paper's topology predicts one clinical sagittal
volume (15 x 512 x 512 voxels of 3.6 x 0.5 x 0.5 mm; on the paper's 3.3 x 0.47 x 0.47 mm grid
about 16 x 545 x 545) in at most 0.2 s without TTA (nnU-Net's predictor: 0.28 s on an H100).

What is timed, for both, in one process after warm-up runs: from the z-scored volume on the
model grid (a float32 array in host memory) to the blended logits on that grid in host memory,
where both pipelines need them next (resampling back to the input grid runs on the CPU in
nnU-Net's export and in BATseg). Reading, resampling and writing are CPU work outside this timing
(`batseg benchmark` times the whole file-to-file job). BATseg: `Predictor.predict_grid` with
the torch backend (fp16 autocast on the GPU, the "auto" tile). nnU-Net:
`nnUNetPredictor.predict_sliding_window_return_logits` (its fp16 autocast, everything on the
device, no mirroring), once with the training patch as its tile (its behaviour) and once with
BATseg's tile. Both load the same model file (random weights: only time matters here); nnU-Net
runs its U-Net without the field head. The input's values do not change the work done, so a random normal volume is used.

    python scripts/bench_gpu_inference.py [--device cuda] [--topology paper] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from batseg.inference.predictor import Predictor
from batseg.inference.resampling import model_grid_shape
from batseg.models import write_untrained_model
from batseg.nnunet_reference import build_predictor


def _seconds(run: Callable[[], np.ndarray], device: str, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()  # returns host memory, so the GPU work is finished when it returns
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--topology", choices=("light", "paper"), default="paper")
    parser.add_argument("--size", type=int, nargs=3, default=[15, 512, 512], metavar=("SLICES", "SI", "AP"))
    parser.add_argument("--spacing", type=float, nargs=3, default=[3.6, 0.5, 0.5], metavar=("SLICE", "SI", "AP"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="batseg-gpu-bench-") as tmp:
        model = write_untrained_model(Path(tmp) / "untrained.batseg", args.topology)
        ours = Predictor(model, device=args.device, backend="torch", cache_folder=Path(tmp))
        shape = model_grid_shape(tuple(args.size), tuple(args.spacing), ours.target_spacing)
        volume = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        tile = ours.tile_for(shape, whole_volume=True)  # what predict_grid tiles the whole scan with
        rows = [("BATseg Predictor.predict_grid (tile auto " + " x ".join(map(str, tile)) + ")",
                 _seconds(lambda: ours.predict_grid(volume)[0], args.device, args.warmup, args.repeats))]
        for label, patch in (("training patch " + " x ".join(map(str, ours.patch_size)), None), ("same tile", list(tile))):
            theirs = build_predictor(model, args.device, patch=patch)  # same file, same weights

            def nnunet_run(predictor=theirs) -> np.ndarray:
                with torch.no_grad():
                    logits = predictor.predict_sliding_window_return_logits(torch.from_numpy(volume[None]))
                return logits.float().cpu().numpy()

            rows.append((f"nnU-Net predict_sliding_window ({label})", _seconds(nnunet_run, args.device, args.warmup, args.repeats)))

    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"{args.topology} topology, model grid {' x '.join(map(str, shape))}, device {name}, "
          f"{args.repeats} timed runs after {args.warmup} warm-up runs")
    print(f"{'pipeline':<72}{'median s':>10}{'min s':>9}")
    for label, times in rows:
        print(f"{label:<72}{statistics.median(times):>10.3f}{min(times):>9.3f}")
    base = statistics.median(rows[0][1])
    for label, times in rows[1:]:
        print(f"speed-up over {label}: {statistics.median(times) / base:.2f}x")


if __name__ == "__main__":
    main()
