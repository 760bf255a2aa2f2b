"""Cord locator files (``.cordloc``): a zip of ``manifest.json`` and ``weights.safetensors``.

The same safety rules as tumour model files (`batseg.model_file`): raw tensors only, so loading
never executes code; the manifest is size-capped and must name this format; the weights member
is size-capped before it is decompressed, must match the manifest's sha256, and its tensor names
and shapes must be exactly those of the locator network. Unlike a tumour model, the locator's
architecture is not read from the file: it is the one `network.ARCHITECTURE` defines, and a file
whose manifest records another is refused (a newer locator needs a newer batseg). Every failure
raises `ModelFileError` with one line.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from batseg.cord_locator.network import ARCHITECTURE
from batseg.cord_locator.planes import PLANE_SPACING_MM
from batseg.errors import ModelFileError
from batseg.model_file import (
    MANIFEST_MEMBER, MAX_MANIFEST_BYTES, WEIGHTS_MEMBER, sha256_bytes, unique_tensors, write_manifest_and_weights,
)
from batseg.model_file import _read_member as _member  # the same size cap and one-line errors

FORMAT = "batseg-cord-locator"
FORMAT_VERSION = 1
LOCATOR_SUFFIX = ".cordloc"
# 4-byte floats of the fixed network, plus the safetensors header.
_MAX_WEIGHTS_BYTES = 16 * 1024 * 1024


def _archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise ModelFileError(f"cord locator {path} does not exist; reinstall batseg or give a .cordloc file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path.name} is not a cord locator file ({exc}); copy it again") from None
    if {MANIFEST_MEMBER, WEIGHTS_MEMBER} - set(archive.namelist()):
        archive.close()
        raise ModelFileError(f"{path.name} lacks {MANIFEST_MEMBER} or {WEIGHTS_MEMBER}; it is not a cord locator file")
    return archive


def _check_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path.name}: manifest is not a cord locator manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{path.name}: cord locator format {version!r:.20} is not one this batseg reads; update batseg")
    if manifest.get("architecture") != ARCHITECTURE or manifest.get("plane_spacing_mm") != PLANE_SPACING_MM:
        raise ModelFileError(f"{path.name}: this cord locator's network differs from the one this batseg builds; update batseg")
    if not isinstance(manifest.get("weights_sha256"), str):
        raise ModelFileError(f"{path.name}: manifest lacks weights_sha256; the file is incomplete")
    return manifest


def read_locator(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The checked manifest and the verified weights bytes of a locator file."""
    path = Path(path)
    with _archive(path) as archive:
        raw = _member(archive, MANIFEST_MEMBER, path, MAX_MANIFEST_BYTES)
        try:
            manifest = _check_manifest(json.loads(raw.decode("utf-8")), path)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ModelFileError(f"{path.name}: manifest.json is not valid JSON; the file is corrupt") from None
        weights = _member(archive, WEIGHTS_MEMBER, path, _MAX_WEIGHTS_BYTES)
    if sha256_bytes(weights) != manifest["weights_sha256"]:
        raise ModelFileError(f"{path.name}: the weights do not match their checksum (tampered or corrupt); do not use this file")
    return manifest, weights


def load_locator(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The locator network (eval mode, CPU) and its manifest, from a verified file."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    from batseg.cord_locator.network import build_locator

    manifest, weights = read_locator(path)
    name = Path(path).name
    try:
        state = load(weights)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{name}: weights are unreadable ({exc}); the file is corrupt") from None
    network = build_locator()
    # The first name of each tensor (PlainConvUNet registers some twice; the file holds each once).
    expected = {k: tuple(v.shape) for k, v in [*network.named_parameters(), *network.named_buffers()]}
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        raise ModelFileError(f"{name}: weights do not fit the cord locator network; the file is incompatible")
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in state.values()):
        raise ModelFileError(f"{name}: weights hold NaN or infinite values; the locator is broken")
    network.load_state_dict(state, strict=False)  # the aliases share the tensors just loaded
    return network.eval(), manifest


def write_locator(path: str | os.PathLike[str], network: Any, details: dict[str, Any], overwrite: bool = False) -> Path:
    """Write a trained locator (weights + manifest with `details`) atomically."""
    from safetensors.torch import save

    path = Path(path)
    if path.exists() and not overwrite:
        raise ModelFileError(f"{path} already exists; choose another output name")
    weights = save(unique_tensors({k: v.detach().cpu() for k, v in network.state_dict().items()}))
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **details, "architecture": ARCHITECTURE,
                "plane_spacing_mm": PLANE_SPACING_MM, "weights_sha256": sha256_bytes(weights)}
    return write_manifest_and_weights(path, manifest, weights)
