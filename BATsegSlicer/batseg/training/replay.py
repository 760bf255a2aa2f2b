"""Where fine-tuning finds the parent model's original training cases (replay data).

Order: `--replay-data DIR`; the folders named in the parent's manifest
(`training.data.sources`) if they exist on this machine; and, for a parent trained on
`batseg phantom` data, the same phantoms regenerated from the seed, count and healthy share
recorded in its manifest (the generator is deterministic by seed). The last case is the one a
Slicer user meets: the shipped model's training folder lives on the machine that trained it,
but its 200 phantoms can be rebuilt anywhere in a few minutes. A regenerated set is kept in
the work dir and reused by later fine-tunings. If the generator's version differs from the
one that made the original data, the replayed phantoms are similar but not identical: said
in the log. Without any of these the run goes on the new cases alone, with a warning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from batseg.progress import Progress


def replay_dataset(
    manifest: dict[str, Any], replay_dir: Path | None, workdir_root: Path, progress: Progress, replay: bool = True
) -> Any:
    """The parent's training cases as a RawDataset, or None (no replay)."""
    from batseg.training.datasets import read_raw_dataset

    if not replay:
        progress.log("no replay (--no-replay): training on the given cases alone")
        return None
    if replay_dir is not None:
        return read_raw_dataset(replay_dir)
    for source in manifest.get("training", {}).get("data", {}).get("sources", []):
        if Path(source).is_dir():
            progress.log(f"replaying the original training data from {source}")
            return read_raw_dataset(source)
    regenerated = regenerate_phantoms(manifest, workdir_root / "replay", progress)
    if regenerated is not None:
        return read_raw_dataset(regenerated)
    progress.log(
        "WARNING: the original training data is unavailable (pass --replay-data DIR); fine-tuning on the new "
        "cases alone risks catastrophic forgetting: the model may lose accuracy on the tumour types and "
        "appearances it learned before"
    )
    return None


def phantom_recipe(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Seed, count, healthy and T2 shares and generator version of a phantom-trained parent, else None."""
    dataset_json = manifest.get("nnunet", {}).get("dataset_json", {})
    meta = dataset_json.get("batseg") or {}
    if meta.get("generator") != "batseg.phantoms" or "seed" not in meta:
        return None
    return {
        "seed": int(meta["seed"]),
        "num_cases": int(dataset_json.get("numTraining") or manifest["training"]["data"]["num_cases"]),
        "healthy_fraction": float(meta.get("healthy_fraction", 0.1)),
        "t2_fraction": float(meta.get("t2_negative_fraction", 0.0)),
        "version": str(meta.get("version", "")),
    }


def regenerate_phantoms(manifest: dict[str, Any], folder: Path, progress: Progress) -> Path | None:
    """The parent's phantom training set rebuilt under `folder` (reused if complete); None if not phantoms."""
    from batseg import __version__
    from batseg.phantoms.dataset import DEFAULT_DATASET_NAME, write_dataset

    recipe = phantom_recipe(manifest)
    if recipe is None:
        return None
    t2 = f"_t2{recipe['t2_fraction']:g}" if recipe["t2_fraction"] else ""
    dataset = folder / f"seed{recipe['seed']}_n{recipe['num_cases']}{t2}" / DEFAULT_DATASET_NAME
    if _complete(dataset, recipe):
        progress.log(f"replaying the parent's phantoms regenerated earlier in {dataset}")
        return dataset
    if recipe["version"] != __version__:
        progress.log(f"warning: the parent's phantoms came from batseg {recipe['version']}'s generator, this is "
                     f"{__version__}: the replayed phantoms are similar, not identical")
    progress.log(f"regenerating the parent's {recipe['num_cases']} training phantoms (seed {recipe['seed']}) for replay")
    return write_dataset(dataset.parent, recipe["num_cases"], recipe["seed"], healthy_fraction=recipe["healthy_fraction"],
                         workers=max(1, os.cpu_count() or 1), overwrite=True, progress=progress,
                         t2_fraction=recipe["t2_fraction"])


def _complete(dataset: Path, recipe: dict[str, Any]) -> bool:
    """A dataset written to the end (dataset.json is its last file) with the recipe's cases."""
    try:
        dataset_json = json.loads((dataset / "dataset.json").read_text())
    except (OSError, ValueError):
        return False
    return dataset_json.get("numTraining") == recipe["num_cases"] and dataset_json.get("batseg", {}).get("seed") == recipe["seed"]
