"""Where fine-tuning finds the data to replay: the lineage's ORIGINAL training cases, and the
cases earlier fine-tuning rounds were corrected on.

Lineage (issue 16, item 1): a fine-tuned model's manifest records, under `training.data`,
- `original`: the training data of the first model of its lineage (the one trained from
  scratch): its folders, case count, description and, for `batseg phantom` data, the recipe
  (seed, count, healthy and T2 shares, generator version) that regenerates it; copied unchanged
  from parent to child, so the fifth round replays what the first model learnt from, not the
  fourth round's corrections;
- `rounds`: one entry per fine-tuning round (the model it made, the folder of its new cases,
  their count).
A model trained from scratch records neither: its own `sources` and `nnunet.dataset_json` are its
original data. A child written before this record existed is read as it was written: its
`sources` were [new cases, replayed cases] and its dataset.json the new cases'.

Order for the original data: `--replay-data DIR`; the `original` folders if they exist on this
machine; and, for phantoms, the same phantoms regenerated from the recorded recipe (the
generator is deterministic by seed). The last case is the one a Slicer user meets: the shipped
model's training folder lives on the machine that trained it, but its 240 phantoms can be
rebuilt anywhere in a few minutes. A regenerated set is kept in the work dir and reused by later
fine-tunings. If the generator's version differs from the one that made the original data, the
replayed phantoms are similar but not identical: said in the log. Without any of these the run
goes on the new cases alone, with a warning.

Earlier rounds' cases are replayed too when their folder still exists and is not this round's
data folder (the Slicer module's export folder grows round after round, so its earlier cases are
already among the new ones): a round made on another folder is not forgotten by the next.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from batseg.progress import Progress


def _data(manifest: dict[str, Any]) -> dict[str, Any]:
    data = (manifest.get("training") or {}).get("data") or {}
    return data if isinstance(data, dict) else {}


def _sources(data: dict[str, Any]) -> list[str]:
    return [s for s in data.get("sources") or [] if isinstance(s, str)]


def _legacy_replaying_child(manifest: dict[str, Any]) -> bool:
    """A fine-tuned model written before the lineage record, that replayed data."""
    parent = manifest.get("parent") or {}
    return "original" not in _data(manifest) and bool(parent.get("replay_cases"))


def recipe_from_dataset_json(dataset_json: dict[str, Any], num_cases: int | None = None) -> dict[str, Any] | None:
    """The `batseg phantom` recipe a dataset.json records (None for other data)."""
    meta = dataset_json.get("batseg") or {}
    if meta.get("generator") != "batseg.phantoms" or "seed" not in meta:
        return None
    return {
        "seed": int(meta["seed"]),
        "num_cases": int(dataset_json.get("numTraining") or num_cases or 0),
        "healthy_fraction": float(meta.get("healthy_fraction", 0.1)),
        "t2_fraction": float(meta.get("t2_negative_fraction", 0.0)),
        "version": str(meta.get("version", "")),
    }


def _recipe_from_dataset_json(manifest: dict[str, Any]) -> dict[str, Any] | None:
    dataset_json = (manifest.get("nnunet") or {}).get("dataset_json") or {}
    return recipe_from_dataset_json(dataset_json, _data(manifest).get("num_cases"))


def original_data(manifest: dict[str, Any]) -> dict[str, Any]:
    """The lineage's original training data: sources, num_cases, description, phantoms (recipe or absent)."""
    data = _data(manifest)
    if isinstance(data.get("original"), dict):
        return data["original"]
    sources = _sources(data)
    if _legacy_replaying_child(manifest):
        return {"sources": sources[1:], "num_cases": int(manifest["parent"]["replay_cases"])}
    original: dict[str, Any] = {"sources": sources, "num_cases": data.get("num_cases"),
                                "description": data.get("description", "")}
    recipe = _recipe_from_dataset_json(manifest)
    if recipe:
        original["phantoms"] = recipe
    return original


def earlier_rounds(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The fine-tuning rounds that made this model: [{model, sources, num_cases}], oldest first."""
    data = _data(manifest)
    if isinstance(data.get("rounds"), list):
        return data["rounds"]
    if _legacy_replaying_child(manifest):
        return [{"model": f"{manifest.get('name')} {manifest.get('version')}", "sources": _sources(data)[:1],
                 "num_cases": manifest["parent"].get("new_cases")}]
    return []


def child_lineage(
    manifest: dict[str, Any], new_folder: Path, new_cases: int, child: str, replay_dir: Path | None = None,
    replay_cases: int | None = None, replay_dataset_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `original` and `rounds` records of a model fine-tuned from `manifest`'s on `new_folder`.

    A `--replay-data` folder is the original data by the user's word: listed first, so the next
    round finds it again; if it is a `batseg phantom` set (`replay_dataset_json`), its recipe
    replaces the parent's, else the parent's recipe is kept as the fallback."""
    original = json.loads(json.dumps(original_data(manifest)))
    if replay_dir is not None:
        given = str(replay_dir)
        original["sources"] = [given] + [s for s in original.get("sources", []) if s != given]
        if replay_cases is not None:
            original["num_cases"] = replay_cases
        recipe = recipe_from_dataset_json(replay_dataset_json or {}, replay_cases)
        if recipe:
            original["phantoms"] = recipe
    rounds = json.loads(json.dumps(earlier_rounds(manifest)))
    rounds.append({"model": child, "sources": [str(new_folder)], "num_cases": int(new_cases)})
    return {"original": original, "rounds": rounds}


def replay_dataset(
    manifest: dict[str, Any], replay_dir: Path | None, workdir_root: Path, progress: Progress, replay: bool = True
) -> Any:
    """The lineage's original training cases as a RawDataset, or None (no replay)."""
    from batseg.training.datasets import read_raw_dataset

    if not replay:
        progress.log("no replay (--no-replay): training on the given cases alone")
        return None
    if replay_dir is not None:
        return read_raw_dataset(replay_dir)
    for source in original_data(manifest).get("sources", []):
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


def earlier_round_datasets(
    manifest: dict[str, Any], new_folder: Path, progress: Progress, replay: bool = True,
    exclude: tuple[Path, ...] = (),
) -> list[Any]:
    """The cases of earlier rounds still on this machine, except this round's folder (and `exclude`)."""
    from batseg.training.datasets import read_raw_dataset

    if not replay:
        return []
    skip = {Path(p).expanduser().resolve() for p in (new_folder, *exclude)}
    found = []
    for entry in earlier_rounds(manifest):
        folders = [Path(s).expanduser().resolve() for s in entry.get("sources") or []]
        existing = [f for f in folders if f.is_dir()]
        if any(f in skip for f in folders):
            continue  # this round's data folder (an export folder that grew): its cases are the new ones
        if not existing:
            # The recorded text, not its resolution: a shipped model records WORK_DIR/... placeholders.
            recorded = ", ".join(str(s) for s in entry.get("sources") or []) or "no folder recorded"
            progress.log(f"the new cases of {entry.get('model', 'an earlier round')} are not on this machine "
                         f"(recorded as {recorded}): not replayed")
            continue
        progress.log(f"replaying the new cases of {entry.get('model', 'an earlier round')} from {existing[0]}")
        found.append(read_raw_dataset(existing[0]))
        skip.add(existing[0])
    return found


def phantom_recipe(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Seed, count, healthy and T2 shares and generator version of the lineage's original phantoms, else None."""
    recipe = original_data(manifest).get("phantoms")
    return dict(recipe) if recipe else None


def regenerate_phantoms(manifest: dict[str, Any], folder: Path, progress: Progress) -> Path | None:
    """The lineage's original phantom training set rebuilt under `folder` (reused if complete); None if not phantoms."""
    from batseg import __version__
    from batseg.phantoms.dataset import DEFAULT_DATASET_NAME, write_dataset

    recipe = phantom_recipe(manifest)
    if recipe is None:
        return None
    t2 = f"_t2{recipe['t2_fraction']:g}" if recipe["t2_fraction"] else ""
    dataset = folder / f"seed{recipe['seed']}_n{recipe['num_cases']}{t2}" / DEFAULT_DATASET_NAME
    if _complete(dataset, recipe):
        progress.log(f"replaying the original phantoms regenerated earlier in {dataset}")
        return dataset
    if recipe["version"] != __version__:
        progress.log(f"warning: the original phantoms came from batseg {recipe['version']}'s generator, this is "
                     f"{__version__}: the replayed phantoms are similar, not identical")
    progress.log(f"regenerating the original {recipe['num_cases']} training phantoms (seed {recipe['seed']}) for replay")
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
