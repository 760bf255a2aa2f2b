"""The CPU speed levers of issue 19, each timed on the paper topology's model grid in one run.

Every lever runs in its own child process (so each peak memory is its own: VmHWM) on the same
input: the benchmark volume of `batseg benchmark` (a phantom resampled to 15 x 512 x 512 voxels
of 3.6 x 0.5 x 0.5 mm, with its cord mask) preprocessed to the model grid (16 x 545 x 545 at
0.47 mm for the paper topology). What is timed is the network stage, `Predictor.predict_grid`
(tiles, backend, blending), after one warm-up tile; the rest of the pipeline is timed end to
end by `batseg benchmark`. Levers:

- onnx, patch tiles: ONNX Runtime with nnU-Net's tiling (training patch, step 0.5);
- onnx, auto tiles: ONNX Runtime with the default "auto" tile (sliding_window.choose_tile);
- onnx, auto tiles, step 0.75: fewer overlapping tiles;
- torch fp32, auto tiles: PyTorch on the CPU;
- torch bf16, auto tiles: PyTorch with bfloat16 autocast on the CPU (AVX512-BF16 where present);
- onnx, cascade crop: ONNX Runtime on the box around the cord mask (canal_crop, margin 25 mm);
- ...-noarena: the same without ONNX Runtime's CPU memory arena and memory pattern (the other
  ONNX levers force them on; the product's default follows backends.use_arena).

Labels of each lever are compared with the first lever that is torch fp32 with patch tiles
("reference"): voxels that differ and per-class Dice. With an untrained model (the default)
the logits are near-ties, so label agreement says little; give --model for a trained one.

    python scripts/bench_paper_levers.py [--model MODEL.batseg] [--topology paper] [--threads 2]
        [--levers onnx-patch,onnx-auto,...] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LEVERS = {
    "torch-patch": ("torch", "fp32", "patch", 0.5, False),
    "onnx-patch": ("onnx", "fp32-arena", "patch", 0.5, False),
    "onnx-auto": ("onnx", "fp32-arena", "auto", 0.5, False),
    "onnx-auto-step075": ("onnx", "fp32-arena", "auto", 0.75, False),
    "torch-auto": ("torch", "fp32", "auto", 0.5, False),
    "torch-bf16-auto": ("torch", "bf16", "auto", 0.5, False),
    "onnx-crop": ("onnx", "fp32-arena", "auto", 0.5, True),
    "onnx-crop-noarena": ("onnx", "fp32-noarena", "auto", 0.5, True),
    "onnx-auto-noarena": ("onnx", "fp32-noarena", "auto", 0.5, False),
}


def _bf16(backend: Any) -> None:
    """Make a TorchBackend run under bfloat16 autocast on the CPU (this benchmark only)."""
    import torch

    def run(tile: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            output = backend.network(torch.from_numpy(tile))
        seg, field = output if isinstance(output, tuple) else (output, None)
        return seg.float().numpy(), None if field is None else field.float().numpy()

    backend.run = run


def one_lever(name: str, model: Path, volume: Path, cord: Path, threads: int, cache: Path, out: Path) -> None:
    """Child process: time one lever's network stage, save its labels, print one JSON line."""
    import SimpleITK as sitk

    from batseg.inference.canal_crop import DEFAULT_MARGIN_MM
    from batseg.inference.memory import peak_resident_bytes
    from batseg.inference.predictor import Predictor

    backend, precision, tile, step, crop = LEVERS[name]
    if precision.startswith("fp32-"):  # ONNX Runtime's memory arena forced on or off (backends.use_arena)
        from batseg.inference import backends

        backends.CPU_MEMORY_ARENA = precision == "fp32-arena"
    predictor = Predictor(model, device="cpu", backend=backend, threads=threads, tile=tile, tile_step=step,
                          cache_folder=cache)
    if precision == "bf16":
        _bf16(predictor.backend)
    image = sitk.ReadImage(str(volume))
    grid, mapping, spacing, _ = predictor.preprocess(image)
    predictor.backend.run(np.zeros((1, 1, *predictor.patch_size), np.float32)[:, :, :2 * predictor.multiple[0],
                                   :predictor.multiple[1], :predictor.multiple[2]])  # warm-up
    start = time.perf_counter()
    if crop:
        roi = sitk.GetArrayFromImage(sitk.ReadImage(str(cord))) > 0
        logits, _, details = predictor.predict_grid_in_roi(grid, roi, mapping, spacing, False, DEFAULT_MARGIN_MM, [])
    else:
        logits, _, details = predictor.predict_grid(grid)
    seconds = time.perf_counter() - start
    np.save(out / f"{name}.npy", np.argmax(logits, axis=0).astype(np.uint8))
    print(json.dumps({"lever": name, "seconds": seconds, "peak_mb": peak_resident_bytes() / 2**20,
                      "tile": details.get("tile"), "tiles": details.get("tiles"),
                      "crop_box": details.get("crop_box"), "grid": list(grid.shape)}), flush=True)


def compare(reference: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Voxels that differ and per-class Dice of `labels` against `reference`."""
    dice = {}
    for value in range(1, 5):
        a, b = reference == value, labels == value
        total = int(a.sum() + b.sum())
        dice[value] = None if total == 0 else 2 * int((a & b).sum()) / total
    return {"differing_voxels": int((reference != labels).sum()), "dice": dice}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: untrained, background output)")
    parser.add_argument("--topology", default="paper", choices=("light", "paper"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated, of {', '.join(LEVERS)}")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.warm:  # fill the ONNX cache only: creating the predictor exports the model
        from batseg.inference.predictor import Predictor

        _, model, _, _, cache, _ = args.child
        Predictor(Path(model), device="cpu", backend="onnx", threads=args.threads, cache_folder=Path(cache))
        return
    if args.child:
        name, model, volume, cord, cache, out = args.child
        one_lever(name, Path(model), Path(volume), Path(cord), args.threads, Path(cache), Path(out))
        return
    levers = [name.strip() for name in args.levers.split(",") if name.strip()]
    unknown = [name for name in levers if name not in LEVERS]
    if unknown:
        sys.exit(f"unknown lever(s) {', '.join(unknown)}: choose from {', '.join(LEVERS)}")
    import SimpleITK as sitk

    from batseg.benchmark import phantom_case
    from batseg.models import write_untrained_model

    with tempfile.TemporaryDirectory(prefix="batseg-levers-") as tmp:
        folder = Path(tmp)
        image, cord, description = phantom_case((15, 512, 512), (3.6, 0.5, 0.5))
        sitk.WriteImage(image, str(folder / "case.nii.gz"))
        sitk.WriteImage(cord, str(folder / "cord.nii.gz"))
        model = args.model or write_untrained_model(folder / "untrained.batseg", args.topology, background_only=True)
        rows = []
        for name in levers:
            command = [sys.executable, __file__, "--threads", str(args.threads), "--child", name, str(model),
                       str(folder / "case.nii.gz"), str(folder / "cord.nii.gz"), str(folder / "cache"), str(folder)]
            if name.startswith("onnx") and not (folder / "cache").exists():  # a warm run pays no ONNX export
                subprocess.run(command[:-7] + ["--warm", *command[-7:]], capture_output=True)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"lever {name} failed: {done.stderr.strip()[-1500:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{name}: {rows[-1]['seconds']:.1f} s, peak {rows[-1]['peak_mb']:.0f} MB", flush=True)
        reference = np.load(folder / f"{levers[0]}.npy")
        for row in rows:
            row["vs_first"] = compare(reference, np.load(folder / f"{row['lever']}.npy"))
    first = rows[0]["seconds"]
    print(f"\nvolume: {description}; model: {args.model or 'untrained ' + args.topology + ', background output'}; "
          f"{args.threads} threads")
    print("| lever | network stage (s) | speed-up vs first | peak memory (MB) | tiles | voxels differing from the "
          "first | Dice vs first, classes 1-4 (%) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        tiles = f"{row['tiles']} x {' x '.join(map(str, row['tile']))}" if row.get("tile") else "-"
        dice = " / ".join("-" if d is None else f"{100 * d:.1f}" for d in row["vs_first"]["dice"].values())
        print(f"| {row['lever']} | {row['seconds']:.1f} | {first / row['seconds']:.2f}x | {row['peak_mb']:.0f} | "
              f"{tiles} | {row['vs_first']['differing_voxels']} | {dice} |")
    if args.json:
        args.json.write_text(json.dumps({"volume": description, "threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
