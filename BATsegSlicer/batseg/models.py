"""Where model files are found: the shipped folder and the user's folder.

- Shipped models: ``BATsegSlicer/Resources/Models/*.batseg`` (next to the engine package in
  the source tree and in the Slicer extension; inside the package in a wheel, `batseg.resources`).
- User models: ``$BATSEG_MODELS_DIR`` if set, else ``~/.batseg/models``.

`default_model_path()` is the shipped model used when `--model` is not given. Decision: the
shipped model whose manifest says ``"default": true``; else, when there is exactly one shipped
model, that one; else the alphabetically first (a stable choice; ship one default model).
`resolve_model(spec)` accepts a path or the name of a listed model (its manifest "name" or its
file name without ``.batseg``). Listing reads manifests only (no torch), so the Slicer module
can show models quickly; unreadable files are listed with their error rather than hidden.

`write_untrained_model` writes a model file with random weights (for benchmarks and geometry
tests before a trained model exists); its manifest and disclaimer say that its labels are
meaningless.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batseg.errors import ModelFileError
from batseg.model_file import MODEL_SUFFIX, read_manifest
from batseg.resources import shipped_dir

SHIPPED_DIR = shipped_dir("Models")
USER_DIR_ENV = "BATSEG_MODELS_DIR"


@dataclass(frozen=True)
class ModelEntry:
    """A model file found in one of the folders."""

    path: Path
    source: str  # "shipped" or "user"
    manifest: dict[str, Any] | None  # None when the file could not be read
    error: str = ""

    @property
    def name(self) -> str:
        if self.manifest and self.manifest.get("name"):
            return str(self.manifest["name"])
        return self.path.name[: -len(MODEL_SUFFIX)]


def user_models_dir() -> Path:
    """The user's model folder ($BATSEG_MODELS_DIR, else ~/.batseg/models)."""
    configured = os.environ.get(USER_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".batseg" / "models"


def _entries(folder: Path, source: str) -> list[ModelEntry]:
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")):
        try:
            entries.append(ModelEntry(path, source, read_manifest(path)))
        except ModelFileError as exc:
            entries.append(ModelEntry(path, source, None, str(exc)))
    return entries


def list_models(shipped_dir: Path = SHIPPED_DIR, user_dir: Path | None = None) -> list[ModelEntry]:
    """Shipped models first, then the user's, each folder alphabetically."""
    return _entries(shipped_dir, "shipped") + _entries(user_dir or user_models_dir(), "user")


def default_model_path(shipped_dir: Path = SHIPPED_DIR) -> Path:
    """The shipped default model (see the module docstring); ModelFileError when none is shipped."""
    shipped = [e for e in _entries(shipped_dir, "shipped") if e.manifest is not None]
    if not shipped:
        raise ModelFileError(
            f"no shipped model was found in {shipped_dir}; pass --model MODEL.batseg "
            f"(or put one in {user_models_dir()})"
        )
    marked = [e for e in shipped if e.manifest and e.manifest.get("default") is True]
    return (marked or shipped)[0].path


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """A model path from --model: an existing path, a listed model's name, or the default."""
    if spec is None or str(spec) == "":
        return default_model_path()
    path = Path(spec).expanduser()
    if path.exists():
        _check_regular_file(path)
        return path
    for entry in list_models():
        if str(spec) in (entry.name, entry.path.name, entry.path.name[: -len(MODEL_SUFFIX)]):
            return entry.path
    raise ModelFileError(
        f"model {spec} is neither a file nor the name of a model in {SHIPPED_DIR} or {user_models_dir()}; "
        "give the path of a .batseg file"
    )


def _check_regular_file(path: Path) -> None:
    """ModelFileError naming what `path` is when it is not a plain file (a folder, a device, a FIFO).

    Reading /dev/zero would never end and a FIFO would block; "does not exist" would mislead.
    """
    import stat

    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return
    kinds = (
        (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
    )
    what = next((name for test, name in kinds if test(mode)), "not a regular file")
    raise ModelFileError(f"model {path} is {what}, not a model file; give the path of a {MODEL_SUFFIX} file")


def untrained_manifest(topology: str = "light") -> dict[str, Any]:
    """The manifest of a random-weight model of a named topology (see `write_untrained_model`)."""
    from batseg.labels import NNUNET_LABELS, NUM_CLASSES, TUMOUR_CLASSES
    from batseg.network import DEFAULT_PATCH, DEFAULT_SPACING, topology_kwargs

    return {
        "name": f"untrained-{topology}",
        "version": "0.0.0",
        "description": f"{topology} topology with random weights, for benchmarks and geometry tests only",
        "architecture": {
            "topology": topology,
            "arch_kwargs": topology_kwargs(topology),
            "num_classes": NUM_CLASSES,
            "input_channels": 1,
            "field_head": {"channels": len(TUMOUR_CLASSES), "activation": "sigmoid", "variant": "classwise"},
        },
        "input": {
            "contrast": "T1Gd",
            "target_spacing": list(DEFAULT_SPACING[topology]),
            "normalization": "zscore",
            "patch_size": list(DEFAULT_PATCH[topology]),
            "orientation": {"code": "PIR", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2]},
        },
        "classes": [{"value": c.value, "key": c.key, "name": c.name, "color": list(c.color)} for c in TUMOUR_CLASSES],
        "training": {"data": {"description": "none: random weights, never trained"}},
        "nnunet": {"dataset_json": {"labels": dict(NNUNET_LABELS)}, "inference_allowed_mirroring_axes": [0, 1, 2]},
        "disclaimer": (
            "Untrained model with random weights: its labels are meaningless. For benchmarks and tests only; "
            "not for clinical use."
        ),
    }


def write_untrained_model(
    path: str | os.PathLike, topology: str = "light", seed: int = 0, overwrite: bool = False,
    background_only: bool = False,
) -> Path:
    """Write a model file of a named topology with random (nnU-Net-initialised) weights.

    Random weights label most voxels as tumour, the worst case for postprocessing and the
    report. `background_only` zeroes the final segmentation layer and gives the background a
    large bias, so every voxel is background (the other end: no lesion at all); every other
    layer stays random and costs what a trained network costs. Both bracket a trained model's
    timings in benchmarks.
    """
    import torch

    from batseg.model_file import network_from_manifest, write_model_file

    manifest = untrained_manifest(topology)
    torch.manual_seed(seed)
    network = network_from_manifest(manifest)
    if background_only:
        manifest["name"] += "-background"
        manifest["description"] += "; segmentation layer set to predict background everywhere"
        final = getattr(network, "unet", network).decoder.seg_layers[-1]
        with torch.no_grad():
            final.weight.zero_()
            final.bias.zero_()
            final.bias[0] = 10.0
    return write_model_file(path, network.state_dict(), manifest, overwrite=overwrite)
