"""nnU-Net v2's own predictor set up from a BATseg model file: the reference `batseg benchmark`
compares against (and a check that a model file works with nnU-Net unchanged).

The network is the model file's PlainConvUNet (`BATsegNet.unet`, or the baseline network
itself) with its weights; the field head is not used (nnU-Net knows nothing of it). Plans and
dataset.json come from the manifest's "nnunet" key (written by `batseg package`), or are built
from the manifest by `batseg.nnunet_plans` (target spacing, patch, topology; nnU-Net's default
resampling functions and z-score normalisation) for a model file that has none, e.g. an
untrained benchmark model.
The predictor is created with `manual_initialization` (nnU-Net's documented way to use a
network it did not train), `use_mirroring=False` unless asked, and predicts file to file with
`predict_from_files_sequential` (no worker processes, so the process's peak memory is all of it).

Run as a child process by the benchmark: ``python -m batseg.nnunet_reference --model M -i IN -o OUT``
prints one line ``BATSEG_NNUNET {json}`` with its timings and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from batseg.nnunet_plans import CONFIGURATION, synthetic_plans

RESULT_PREFIX = "BATSEG_NNUNET "


def plans_from_manifest(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plans, dataset_json) for nnU-Net: the manifest's own, or built from it."""
    from batseg.labels import NNUNET_LABELS

    stored = manifest.get("nnunet") or {}
    dataset_json = dict(stored.get("dataset_json") or {})
    dataset_json.setdefault("channel_names", {"0": manifest["input"].get("contrast", "T1Gd")})
    dataset_json.setdefault("labels", dict(NNUNET_LABELS))
    dataset_json.setdefault("file_ending", ".nii.gz")
    dataset_json.setdefault("numTraining", 0)
    if stored.get("plans"):
        return stored["plans"], dataset_json
    plans = synthetic_plans(
        manifest["architecture"]["arch_kwargs"], manifest["input"]["target_spacing"], manifest["input"]["patch_size"],
        planner="batseg.nnunet_reference (built from the model manifest)",
    )
    return plans, dataset_json


def build_predictor(
    model_path: str | Path, device: str = "cpu", mirroring: bool = False, patch: list[int] | None = None
) -> Any:
    """An nnUNetPredictor holding the model file's PlainConvUNet and weights.

    `patch` replaces the plan's patch size (nnU-Net's sliding-window tile); default: the plan's.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from batseg.model_file import load_model

    loaded = load_model(model_path, device)
    network = getattr(loaded.network, "unet", loaded.network)
    plans, dataset_json = plans_from_manifest(loaded.manifest)
    configuration_name = (loaded.manifest.get("nnunet") or {}).get("configuration", CONFIGURATION)
    if patch is not None:
        plans = json.loads(json.dumps(plans))  # a copy: the manifest's plans stay as stored
        plans["configurations"][configuration_name]["patch_size"] = [int(p) for p in patch]
    plans_manager = PlansManager(plans)
    predictor = nnUNetPredictor(
        tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
        perform_everything_on_device=device == "cuda", device=torch.device(device), verbose=False,
        allow_tqdm=False,
    )
    mirror_axes = (loaded.manifest.get("nnunet") or {}).get("inference_allowed_mirroring_axes") or (0, 1, 2)
    predictor.manual_initialization(
        network, plans_manager, plans_manager.get_configuration(configuration_name),
        [network.state_dict()], dataset_json, "nnUNetTrainer", tuple(mirror_axes),
    )
    return predictor


def main(argv: list[str] | None = None) -> int:
    """Predict one file with nnU-Net's predictor and print the timings (child process of the benchmark)."""
    parser = argparse.ArgumentParser(prog="python -m batseg.nnunet_reference")
    parser.add_argument("--model", required=True)
    parser.add_argument("-i", "--input", required=True)
    parser.add_argument("-o", "--output", required=True, help="output file, ending in .nii.gz")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--mirroring", action="store_true")
    parser.add_argument("--patch", type=int, nargs=3, default=None, help="sliding-window tile (default: the plan's patch)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(name, str(Path(args.output).parent))  # silences nnU-Net's notice; unused
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = build_predictor(args.model, args.device, args.mirroring, args.patch)
    ready = time.perf_counter()
    truncated = args.output[: -len(".nii.gz")] if args.output.endswith(".nii.gz") else args.output
    predictor.predict_from_files_sequential([[args.input]], [truncated], save_probabilities=False, overwrite=True)
    done = time.perf_counter()
    from batseg.inference.memory import peak_resident_bytes

    print(RESULT_PREFIX + json.dumps({
        "setup_s": ready - start, "predict_s": done - ready, "in_process_s": done - start,
        "peak_memory_mb": peak_resident_bytes() / 1024**2,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
