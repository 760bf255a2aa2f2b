"""nnU-Net results folder -> `.batseg` model file (weights + self-describing manifest).

Input: a trainer folder of nnU-Net's results (`<trainer>__<plans>__3d_fullres`) holding
`plans.json`, `dataset.json` and `fold_K/checkpoint_final.pth` (or `_best` / `_latest`),
from `batseg train` or from plain `nnUNetv2_train` with the default PlainConvUNet (then the
model has no field head: the nnU-Net baseline). The network is rebuilt from the plans, the
checkpoint's weights are loaded into it strictly (so a model file can never hold weights
that do not fit its manifest), and `model_file.write_model_file` writes it atomically.

The manifest records the topology, classes, spacing, normalisation, the field head, what the
training saw (cases per tumour type, source and description from dataset.json), epochs, seed,
the exact command line, validation metrics when the fold had a held-out validation (nnU-Net's
`validation/summary.json`: per-class Dice over that fold's cases), and under "nnunet" the
plans and dataset.json, so nnU-Net's own predictor can be set up from the model file alone.

Disclaimer (decision): data described as synthetic / phantom gets the project's phantom
disclaimer; any other data gets a research-use disclaimer naming its description.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from batseg.errors import BATsegError
from batseg.labels import NUM_CLASSES, TUMOUR_CLASSES
from batseg.postprocess_settings import POSTPROCESSING_KEY
from batseg.training.options import PLANS_KEY, TrainingOptions
from batseg.training.plans import CONFIGURATION, UNET_CLASS

CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth")
# Without --version a model is a development version: "1.0.0" would claim a release for any run,
# two epochs included (issue 17). Name a release explicitly.
DEFAULT_VERSION = "0.1.0"


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BATsegError(f"{path.parent} is not an nnU-Net results folder: {path.name} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def find_checkpoint(fold_dir: Path) -> Path:
    """The final checkpoint of a fold, else its best, else its latest."""
    for name in CHECKPOINTS:
        if (fold_dir / name).is_file():
            return fold_dir / name
    raise BATsegError(f"{fold_dir} holds no nnU-Net checkpoint ({', '.join(CHECKPOINTS)}); train first")


def options_of(plans: dict[str, Any]) -> TrainingOptions:
    """The run's options; a results folder of plain nnU-Net is the baseline (no field head)."""
    if PLANS_KEY in plans:
        return TrainingOptions.from_plans(plans)
    return TrainingOptions(loss="none", topology=topology_name(plans))


def topology_name(plans: dict[str, Any]) -> str:
    """The named topology whose keyword arguments the plans use, else "custom"."""
    from batseg.network import TOPOLOGIES

    if "batseg_topology" in plans:
        return plans["batseg_topology"]
    arch = plans["configurations"][CONFIGURATION]["architecture"]["arch_kwargs"]
    for name, kwargs in TOPOLOGIES.items():
        if json.loads(json.dumps(kwargs)) == json.loads(json.dumps(arch)):
            return name
    return "custom"


def field_head(options: TrainingOptions) -> dict[str, Any] | None:
    """The manifest's description of the field head (None for the baseline)."""
    if not options.has_field_head:
        return None
    from batseg.losses import head_activation, target_kind
    from batseg.training.field_transform import boundary_channels

    kind = target_kind(options.loss)
    return {
        "channels": boundary_channels(kind, options.variant, NUM_CLASSES),
        "activation": head_activation(options.loss, options.field_normalisation),
        "variant": options.variant,
        "truncation": options.truncation,  # null: no truncation (Table 5)
        "normalised": options.field_normalisation,
        "loss": options.loss,
        "target": kind,
    }


def validation_metrics(fold_dir: Path) -> dict[str, Any]:
    """nnU-Net's held-out validation Dice of the fold (empty if there was none)."""
    summary_file = fold_dir / "validation" / "summary.json"
    if not summary_file.is_file():
        return {}
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    per_class = {}
    for c in TUMOUR_CLASSES:
        entry = summary.get("mean", {}).get(str(c.value))
        if entry is not None:
            per_class[c.key] = entry.get("Dice")
    from batseg.training.fold_metrics import PROTOCOL, read_fold_summary

    paper = read_fold_summary(fold_dir)
    return {
        "source": "nnU-Net final validation on the held-out fold (validation/summary.json)",
        "num_cases": len(summary.get("metric_per_case", [])),
        "dice_per_class": per_class,
        "mean_foreground_dice": summary.get("foreground_mean", {}).get("Dice"),
        **({"paper_protocol": {"source": PROTOCOL, **paper}} if paper else {}),
    }


def _training_log(checkpoint: dict[str, Any]) -> dict[str, Any]:
    logged = checkpoint.get("logging", {})

    def last(key: str) -> float | None:
        values = logged.get(key) or []
        return float(values[-1]) if values else None

    return {
        **_timing(logged),
        "final_train_loss": last("train_losses"),
        "final_train_boundary_loss": last("train_boundary_losses"),
        "final_val_loss": last("val_losses"),
        "final_pseudo_dice": last("mean_fg_dice"),
        "final_ema_pseudo_dice": last("ema_fg_dice"),
    }


def _timing(logged: dict[str, Any]) -> dict[str, Any]:
    """Median seconds per epoch of the run (what `budget.expected_seconds` scales from)."""
    import statistics

    starts, ends = logged.get("epoch_start_timestamps") or [], logged.get("epoch_end_timestamps") or []
    durations = [float(e) - float(s) for s, e in zip(starts, ends) if float(e) > float(s)]
    if not durations:
        return {}
    return {"median_seconds_per_epoch": round(statistics.median(durations), 3), "epochs_timed": len(durations)}


def disclaimer(description: str) -> str:
    from batseg.model_file import DISCLAIMER

    if re.search(r"synthetic|phantom", description, re.IGNORECASE):
        return DISCLAIMER
    return (
        "Research software. This model was trained with batseg on user-provided data"
        + (f" ({description})" if description else "")
        + "; it is not a medical device and is not for clinical use."
    )


def rebuild_network(configuration: dict[str, Any], options: TrainingOptions, weights: dict[str, Any]) -> Any:
    """The network the plans describe, with the checkpoint's weights loaded strictly."""
    from batseg.network import build_network

    arch = configuration["architecture"]
    if arch["network_class_name"] != UNET_CLASS:
        raise BATsegError(
            f"the results use {arch['network_class_name'].rsplit('.', 1)[-1]}; BATseg model files hold PlainConvUNet "
            "networks (nnU-Net's default plans) only"
        )
    head = field_head(options)
    network = build_network(
        arch["arch_kwargs"],
        num_classes=NUM_CLASSES,
        field_channels=head["channels"] if head else 0,
        field_activation=head["activation"] if head else "sigmoid",
    )
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BATsegError(f"the checkpoint does not fit the network its plans describe ({first})") from None
    return network


def build_manifest(
    folder: Path, fold: str, plans: dict[str, Any], dataset_json: dict[str, Any], checkpoint: dict[str, Any],
    name: str | None, version: str | None,
) -> dict[str, Any]:
    """The manifest of a model file packaged from an nnU-Net results folder."""
    from batseg import __version__
    from batseg.labels import NNUNET_LABELS

    options = options_of(plans)
    configuration = plans["configurations"][CONFIGURATION]
    record = json.loads((folder / "batseg_training.json").read_text(encoding="utf-8")) if (
        folder / "batseg_training.json").is_file() else {}
    data = record.get("data", {"description": str(dataset_json.get("description", dataset_json.get("name", "")))})
    fold_dir = folder / f"fold_{fold}"
    arch = configuration["architecture"]
    manifest = {
        "name": name or record.get("name") or f"batseg-{topology_name(plans)}-{options.run_tag}",
        "version": version or DEFAULT_VERSION,
        "description": f"BATseg ({options.run_tag}) trained with batseg {__version__} on nnU-Net v2",
        "architecture": {
            "topology": topology_name(plans),
            "arch_kwargs": arch["arch_kwargs"],
            "num_classes": NUM_CLASSES,
            "input_channels": 1,
            "field_head": field_head(options),
        },
        "input": {
            "contrast": "T1Gd",
            "target_spacing": [float(s) for s in configuration["spacing"]],
            "normalization": "zscore",
            "patch_size": [int(p) for p in configuration["patch_size"]],
            "orientation": {
                "convention": "nnunet",
                "note": "the training images' array axes (orientation code of the training data), then nnU-Net's "
                "transpose_forward (slice axis first)",
                "transpose_forward": plans["transpose_forward"],
                "transpose_backward": plans["transpose_backward"],
                **({"code": data["orientation"]} if data.get("orientation") else {}),
            },
        },
        "classes": [{"value": c.value, "key": c.key, "name": c.name, "color": list(c.color)} for c in TUMOUR_CLASSES],
        "training": {
            "framework": _nnunet_version(),
            "trainer": checkpoint.get("trainer_name"),
            "configuration": CONFIGURATION,
            "fold": fold,
            "epochs_completed": int(checkpoint.get("current_epoch", 0)),
            "epochs_planned": options.epochs,
            "iterations_per_epoch": options.iterations_per_epoch,
            "batch_size": int(configuration["batch_size"]),
            "batch_dice": bool(configuration.get("batch_dice", False)),
            "learning_rate": options.lr,
            "seed": options.seed,
            "boundary_loss": options.loss,
            "command": record.get("command") or options.command,
            "data": data,
            **_training_log(checkpoint),
        },
        "metrics": {"validation": validation_metrics(fold_dir)},
        "nnunet": {
            "plans": plans,
            "dataset_json": {**dataset_json, "labels": dict(NNUNET_LABELS)},
            "configuration": CONFIGURATION,
            "inference_allowed_mirroring_axes": checkpoint.get("inference_allowed_mirroring_axes"),
        },
        "disclaimer": disclaimer(str(data.get("description", ""))),
    }
    if record.get("device"):
        manifest["training"]["device"] = record["device"]
    # A fine-tuned model keeps its parent's tuned postprocessing (finetune.inherited_postprocessing),
    # marked as inherited; without it the model would fall back to the default minimum volume.
    for key in ("parent", POSTPROCESSING_KEY):
        if record.get(key):
            manifest[key] = record[key]
    return manifest


def _nnunet_version() -> str:
    from importlib.metadata import version

    return f"nnunetv2 {version('nnunetv2')}"


def package_results(
    folder: str | Path, fold: str, output: str | Path, name: str | None = None, version: str | None = None,
    overwrite: bool = False, checkpoint_name: str | None = None,
) -> Path:
    """Write the model file of fold `fold` of an nnU-Net results trainer folder; returns its path."""
    import torch

    from batseg.model_file import write_model_file

    folder = Path(folder).expanduser().resolve()
    plans = _load_json(folder / "plans.json")
    dataset_json = _load_json(folder / "dataset.json")
    if CONFIGURATION not in plans.get("configurations", {}):
        raise BATsegError(f"{folder}: the plans have no {CONFIGURATION} configuration; BATseg models are 3D")
    fold_dir = folder / f"fold_{fold}"
    path = fold_dir / checkpoint_name if checkpoint_name else find_checkpoint(fold_dir)
    if not path.is_file():
        raise BATsegError(f"{path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    plans.pop("continue_training", None)
    network = rebuild_network(plans["configurations"][CONFIGURATION], options_of(plans), checkpoint["network_weights"])
    manifest = build_manifest(folder, fold, plans, dataset_json, checkpoint, name, version)
    return write_model_file(output, network.state_dict(), manifest, overwrite=overwrite)


def write_cv_summary(model_files: list[Path], output: Path) -> dict[str, Any]:
    """Mean held-out Dice per class over the folds' model files (nnU-Net's validation Dice) and,
    where the folds were scored with it, the paper's protocol as mean +- sd (`fold_metrics`), as JSON."""
    from batseg.atomic_files import write_text_atomically
    from batseg.model_file import read_manifest

    per_fold = [read_manifest(p)["metrics"]["validation"] for p in model_files]
    summary: dict[str, Any] = {"folds": len(per_fold), "dice_per_class": {}}
    for c in TUMOUR_CLASSES:
        values = [f["dice_per_class"].get(c.key) for f in per_fold if f.get("dice_per_class")]
        values = [v for v in values if v is not None and v == v]
        summary["dice_per_class"][c.key] = sum(values) / len(values) if values else None
    means = [f.get("mean_foreground_dice") for f in per_fold if f.get("mean_foreground_dice") is not None]
    summary["mean_foreground_dice"] = sum(means) / len(means) if means else None
    papers = [f.get("paper_protocol") for f in per_fold]
    if any(papers):
        from batseg.training.fold_metrics import PROTOCOL, cv_table

        summary["paper_protocol"] = {"source": PROTOCOL, **cv_table(papers)}
    write_text_atomically(output, json.dumps(summary, indent=2), overwrite=True)
    return summary
