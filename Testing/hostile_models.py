"""A corpus of hostile model files, generated from a valid one, for the red-team regression tests.

Each case is a `.batseg` written byte by byte (zip + manifest + weights), bypassing the engine's
writer, which refuses such manifests. Manifest edits keep the weights, so the checksum stays
valid: the engine must refuse the file for what the manifest says, not for a checksum. Code-
execution cases name `os.system` (or similar) with a command that creates a sentinel file; a
test proves nothing ran by the sentinel's absence.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any, Callable

Edit = Callable[[dict[str, Any]], None]


def read_source(model: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest and weights bytes of a valid model file."""
    with zipfile.ZipFile(model) as archive:
        return json.loads(archive.read("manifest.json")), archive.read("weights.safetensors")


def write_raw(path: Path, manifest_text: str | bytes, weights: bytes, weights_compression: int = zipfile.ZIP_STORED) -> Path:
    """A model file with exactly these members (no validation)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", manifest_text, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("weights.safetensors", weights, compress_type=weights_compression)
    return path


def with_edit(source: Path, path: Path, edit: Edit) -> Path:
    """A copy of `source` whose manifest `edit` changed in place (weights and checksum kept)."""
    manifest, weights = read_source(source)
    manifest = copy.deepcopy(manifest)
    edit(manifest)
    return write_raw(path, json.dumps(manifest), weights)


def with_weights(source: Path, path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
    """A copy of `source` whose tensors `change` replaced, with a correct checksum."""
    from safetensors.torch import load, save

    manifest, weights = read_source(source)
    new = save(change(load(weights)))
    manifest["weights_sha256"] = hashlib.sha256(new).hexdigest()
    return write_raw(path, json.dumps(manifest), new)


def _set(*keys: str, value: Any) -> Edit:
    """An edit setting manifest[keys[0]][keys[1]]... = value."""
    def edit(manifest: dict[str, Any]) -> None:
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _arch(key: str, value: Any) -> Edit:
    return _set("architecture", "arch_kwargs", key, value=value)


def code_execution_edits(sentinel: Path) -> dict[str, Edit]:
    """Manifests naming a callable that would run `touch sentinel` if nnU-Net imported it."""
    command = f"touch {sentinel}"

    def both(key: str, name: str, kwargs: dict[str, Any]) -> Edit:
        def edit(manifest: dict[str, Any]) -> None:
            _arch(key, name)(manifest)
            _arch(f"{key}_kwargs", kwargs)(manifest)
        return edit

    def plans(edit_configuration: Callable[[dict[str, Any]], None]) -> Edit:
        def edit(manifest: dict[str, Any]) -> None:
            for configuration in manifest["nnunet"]["plans"]["configurations"].values():
                edit_configuration(configuration)
        return edit

    def plans_nonlin(configuration: dict[str, Any]) -> None:
        configuration["architecture"]["arch_kwargs"]["nonlin"] = "os.system"
        configuration["architecture"]["arch_kwargs"]["nonlin_kwargs"] = {"command": command}

    return {
        "nonlin_os_system": both("nonlin", "os.system", {"command": command}),
        "dropout_os_system": both("dropout_op", "os.system", {"command": command}),
        "norm_subprocess": both("norm_op", "subprocess.getoutput", {"cmd": command}),
        "conv_eval": _arch("conv_op", "builtins.eval"),
        "plans_nonlin_os_system": plans(plans_nonlin),
        "plans_network_class": plans(lambda c: c["architecture"].update(network_class_name="os.system")),
        "plans_requires_import": plans(lambda c: c["architecture"]["_kw_requires_import"].append("conv_bias")),
        "plans_preprocessor": plans(lambda c: c.update(preprocessor_name="system")),
        "plans_normalization": plans(lambda c: c.update(normalization_schemes=["os.system"])),
    }


def malformed_edits() -> dict[str, Edit]:
    """Manifests of the wrong type or range in each field the engine builds from."""
    def delete(*keys: str) -> Edit:
        def edit(manifest: dict[str, Any]) -> None:
            target = manifest
            for key in keys[:-1]:
                target = target[key]
            del target[keys[-1]]
        return edit

    return {
        "architecture_list": _set("architecture", value=[1, 2]),
        "arch_kwargs_string": _set("architecture", "arch_kwargs", value="PlainConvUNet"),
        "classes_string": _set("classes", value="meningioma"),
        "field_head_list": _set("architecture", "field_head", value=[4]),
        "field_head_activation": _set("architecture", "field_head", "activation", value="relu"),
        "num_classes_string": _set("architecture", "num_classes", value="5"),
        "num_classes_huge": _set("architecture", "num_classes", value=10**9),
        "patch_size_string": _set("input", "patch_size", value="16 64 64"),
        "strides_scalar": _arch("strides", 2),
        "strides_zero": _arch("strides", [[0, 1, 1]] * 5),
        "kernel_sizes_short": _arch("kernel_sizes", [[3, 3]] * 5),
        "features_5000": _arch("features_per_stage", [16, 32, 64, 128, 5000]),
        "features_40000": _arch("features_per_stage", [16, 32, 64, 128, 40000]),
        "n_stages_bool": _arch("n_stages", True),
        "unknown_arch_key": _arch("block", "os.system"),
        "target_spacing_zero": _set("input", "target_spacing", value=[0, 0.94, 0.94]),
        "target_spacing_nan": _set("input", "target_spacing", value=[float("nan"), 0.94, 0.94]),
        "target_spacing_two": _set("input", "target_spacing", value=[0.94, 0.94]),
        "postprocessing_string": _set("postprocessing", value="min 500"),
        "min_volume_infinite": _set("postprocessing", "min_volume_mm3", value=float("inf")),
        "min_enhancement_50": _set("postprocessing", "min_enhancement", value=50.0),
        "min_enhancement_string": _set("postprocessing", "min_enhancement", value="1.2"),
        "mirror_axis_7": _set("nnunet", "inference_allowed_mirroring_axes", value=[7]),
        "format_version_string": _set("format_version", value="1"),
        "disclaimer_list": _set("disclaimer", value=["a", "b"]),
        "weights_sha_not_hex": _set("weights_sha256", value="x" * 64),
        "norm_kwargs_eps_nan": _arch("norm_op_kwargs", {"eps": float("nan"), "affine": True}),
        "missing_input": delete("input"),
    }


def deep_manifest_text(depth: int = 100_000) -> str:
    """A manifest JSON nested `depth` levels deep (RecursionError in a naive reader)."""
    return '{"format": "batseg-model", "x": ' + "[" * depth + "]" * depth + "}"
