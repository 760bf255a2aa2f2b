"""BATseg model files: one self-describing, versioned artefact per trained model.

A model file (extension ``.batseg``) is a zip archive with two members:
- ``manifest.json``: what the model is (architecture, classes with colours, input contrast,
  target spacing, normalisation, training data summary, measured metrics, disclaimer) and
  the sha256 of the weights member;
- ``weights.safetensors``: the state dict in safetensors format, which holds raw tensors
  only, so loading a model file can never execute code (unlike a pickled checkpoint).

Reading the manifest and verifying the checksum need neither torch nor nnU-Net (the Slicer
module validates user-added files in its own process). Every failure (missing, not a zip,
truncated, tampered, newer format, other classes) raises `ModelFileError` with one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batseg.atomic_files import write_atomically
from batseg.errors import ModelFileError
from batseg.manifest_schema import validate_manifest

FORMAT = "batseg-model"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".batseg"
MANIFEST_MEMBER = "manifest.json"
WEIGHTS_MEMBER = "weights.safetensors"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

DISCLAIMER = (
    "Research software. This model is trained on synthetic data only (computer-made phantoms, or synthetic "
    "lesions painted into real healthy scans); it is not a medical device and is not for clinical use."
)

# Keys every manifest must carry, and the nested keys the engine relies on.
REQUIRED_KEYS = ("format", "format_version", "name", "version", "architecture", "classes", "input", "weights_sha256")
REQUIRED_ARCH_KEYS = ("topology", "arch_kwargs", "num_classes", "input_channels", "field_head")
REQUIRED_INPUT_KEYS = ("contrast", "target_spacing", "normalization", "patch_size")
# PlainConvUNet keyword arguments without which the network cannot be rebuilt.
REQUIRED_NETWORK_KEYS = ("n_stages", "features_per_stage", "kernel_sizes", "strides", "n_conv_per_stage")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; give the path of a .batseg file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(
            f"{path.name} is not a BATseg model file (not a readable zip archive: {exc}); "
            "it may be truncated or corrupt: download or copy it again"
        ) from None
    names = set(archive.namelist())
    missing = {MANIFEST_MEMBER, WEIGHTS_MEMBER} - names
    if missing:
        archive.close()
        raise ModelFileError(f"{path.name} lacks {', '.join(sorted(missing))}; it is not a BATseg model file")
    return archive


def _read_member(archive: zipfile.ZipFile, member: str, path: Path, limit: int | None = None) -> bytes:
    info = archive.getinfo(member)
    if limit is not None and info.file_size > limit:
        raise ModelFileError(f"{path.name}: {member} is implausibly large ({info.file_size} bytes); file rejected")
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"{path.name} is corrupt or truncated ({exc}); copy the model file again") from None


def _check_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path.name}: manifest is not a BATseg model manifest")
    for key in ("architecture", "input"):
        if not isinstance(manifest.get(key, {}), dict):
            raise ModelFileError(f"{path.name}: manifest field {key} must be an object; the model file is invalid")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    missing += [f"architecture.{k}" for k in REQUIRED_ARCH_KEYS if k not in manifest.get("architecture", {})]
    missing += [f"input.{k}" for k in REQUIRED_INPUT_KEYS if k not in manifest.get("input", {})]
    arch_kwargs = manifest.get("architecture", {}).get("arch_kwargs", {})
    if isinstance(arch_kwargs, dict):
        missing += [f"architecture.arch_kwargs.{k}" for k in REQUIRED_NETWORK_KEYS if k not in arch_kwargs]
    if missing:
        raise ModelFileError(f"{path.name}: manifest lacks {', '.join(missing)}; the file is incomplete")
    version = manifest["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(
            f"{path.name}: manifest field format_version must be a whole number from 1, not {version!r:.40}; "
            "the model file is invalid, do not use it"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name} uses model-file format {version}, newer than this batseg reads ({FORMAT_VERSION}); "
            "update batseg"
        )
    # Types, ranges and allow-listed class names: nothing is built from an unchecked manifest.
    validate_manifest(manifest, path.name)
    return manifest


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a model file, checked for form (not the weights' checksum)."""
    path = Path(path)
    with _open_archive(path) as archive:
        raw = _read_member(archive, MANIFEST_MEMBER, path, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path.name}: manifest.json is not valid JSON; the file is corrupt") from None
    return _check_manifest(manifest, path)


def _read_verified(path: Path) -> tuple[dict[str, Any], bytes]:
    manifest = read_manifest(path)
    with _open_archive(path) as archive:
        # Capped before decompressing: a small file may declare a member of many GB.
        weights = _read_member(archive, WEIGHTS_MEMBER, path, _weights_limit(manifest))
    if sha256_bytes(weights) != manifest["weights_sha256"]:
        raise ModelFileError(
            f"{path.name}: the weights do not match the checksum in the manifest (tampered or corrupt); "
            "do not use this file"
        )
    return manifest, weights


def verify(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a model file whose weights match their recorded sha256 (torch-free)."""
    return _read_verified(Path(path))[0]


def check_classes(manifest: dict[str, Any], expected: list[dict[str, Any]] | None = None) -> None:
    """Refuse a model made for other classes than BATseg's four tumour types (or `expected`)."""
    from batseg.labels import TUMOUR_CLASSES

    wanted = expected or [{"value": c.value, "key": c.key} for c in TUMOUR_CLASSES]
    have = [(c.get("value"), c.get("key")) for c in manifest.get("classes", [])]
    if have != [(c["value"], c["key"]) for c in wanted]:
        names = ", ".join(str(k) for _, k in have) or "none"
        raise ModelFileError(
            f"model {manifest.get('name')!r} segments other classes ({names}) than BATseg's tumour types; "
            "choose a BATseg spinal tumour model"
        )


def write_model_file(
    path: str | os.PathLike[str], state_dict: dict[str, Any], manifest: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write weights + manifest atomically (temporary file in the same folder, then rename).

    `manifest` is completed with the format keys and the weights' sha256; it is returned
    as written by `read_manifest`.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.exists() and not overwrite:
        raise ModelFileError(f"{path} already exists; choose another output name (or pass --overwrite)")
    weights = save(unique_tensors(state_dict))
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    full.setdefault("disclaimer", DISCLAIMER)
    full["weights_file"] = WEIGHTS_MEMBER
    full["weights_sha256"] = sha256_bytes(weights)
    _check_manifest(full, path)
    return write_manifest_and_weights(path, full, weights)


def write_manifest_and_weights(path: Path, manifest: dict[str, Any], weights: bytes) -> Path:
    """The zip of a manifest and safetensors weights, written atomically (model and locator files)."""
    def write_archive(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w") as archive:
            archive.writestr(MANIFEST_MEMBER, json.dumps(manifest, indent=2), compress_type=zipfile.ZIP_DEFLATED)
            # Stored, not deflated: float weights barely compress and stored members load faster.
            archive.writestr(WEIGHTS_MEMBER, weights, compress_type=zipfile.ZIP_STORED)

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, write_archive, overwrite=True)
    return path


def unique_tensors(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The state dict with each shared tensor kept once, under its first name.

    nnU-Net's PlainConvUNet registers the same parameters under several names (the decoder
    keeps a reference to the encoder; conv blocks list their layers twice), and safetensors
    refuses aliased tensors. Loading rebuilds the aliases from the network itself.
    """
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    unique: dict[str, Any] = {}
    for name, tensor in state_dict.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            continue
        seen.add(key)
        unique[name] = tensor.detach().to("cpu").contiguous()
    return unique


def with_manifest_updates(
    path: str | os.PathLike[str], updates: dict[str, Any], output: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """A copy of a verified model file with top-level manifest keys replaced (e.g. measured
    metrics added after evaluation); the weights and their checksum are unchanged."""
    from safetensors.torch import load

    source = Path(path)
    manifest, weights = _read_verified(source)
    protected = {"format", "format_version", "weights_sha256", "weights_file", "architecture", "classes", "input"}
    if protected & set(updates):
        raise ModelFileError(f"cannot change {', '.join(sorted(protected & set(updates)))} of an existing model file")
    manifest = {k: v for k, v in manifest.items() if k not in ("format", "format_version")}
    return write_model_file(output, load(weights), {**manifest, **updates}, overwrite=overwrite)


@dataclass
class LoadedModel:
    """A verified model file: its manifest and the network with its weights loaded (eval mode)."""

    path: Path
    manifest: dict[str, Any]
    network: Any  # torch.nn.Module; typed loosely so this module imports without torch

    @property
    def field_head(self) -> dict[str, Any] | None:
        return self.manifest["architecture"]["field_head"]


def network_from_manifest(manifest: dict[str, Any], deep_supervision: bool = False) -> Any:
    """The untrained network a manifest describes."""
    from batseg.network import build_network

    arch = manifest["architecture"]
    head = arch["field_head"] or {}
    return build_network(
        arch["arch_kwargs"],
        num_classes=arch["num_classes"],
        field_channels=head.get("channels", 0),
        field_activation=head.get("activation", "sigmoid"),
        input_channels=arch["input_channels"],
        deep_supervision=deep_supervision,
    )


def _weights_limit(manifest: dict[str, Any]) -> int:
    """The largest weights member a manifest's architecture can justify (8-byte floats at most,
    plus the safetensors header): checked before the member is decompressed."""
    from batseg.manifest_schema import parameter_bound

    arch = manifest["architecture"]
    head = (arch["field_head"] or {}).get("channels", 0)
    parameters = parameter_bound(arch["arch_kwargs"], arch["input_channels"], arch["num_classes"])
    return 8 * (parameters + 64 * head) + (1 << 20)


def _safetensors_shapes(weights: bytes, name: str) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (8-byte length, then JSON), read
    without touching the tensor data."""
    header_length = int.from_bytes(weights[:8], "little") if len(weights) >= 8 else -1
    try:
        if not 0 < header_length <= min(len(weights) - 8, MAX_MANIFEST_BYTES):
            raise ValueError("bad header length")
        header = json.loads(weights[8 : 8 + header_length].decode("utf-8"))
        return {k: [int(d) for d in v["shape"]] for k, v in header.items() if k != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, RecursionError):
        raise ModelFileError(f"{name}: weights are unreadable (bad safetensors header); the file is corrupt") from None


def _expected_shapes(manifest: dict[str, Any]) -> dict[str, list[int]]:
    """Tensor name -> shape of the network a manifest describes, built on torch's storage-free
    "meta" device: nothing is allocated, whatever sizes the manifest claims."""
    import torch

    with torch.device("meta"):
        network = network_from_manifest(manifest)
    tensors = [*network.named_parameters(), *network.named_buffers()]  # first name of each shared tensor
    return {name: list(tensor.shape) for name, tensor in tensors}


def _check_weight_shapes(manifest: dict[str, Any], weights: bytes, name: str) -> None:
    have, expected = _safetensors_shapes(weights, name), _expected_shapes(manifest)
    if set(have) != set(expected):
        differ = sorted(set(have) ^ set(expected))
        problem = f"{len(differ)} tensor names differ, e.g. {differ[0]}"
    else:
        wrong = [k for k in expected if have[k] != expected[k]]
        if not wrong:
            return
        problem = f"{len(wrong)} tensor shapes differ, e.g. {wrong[0]} {have[wrong[0]]} instead of {expected[wrong[0]]}"
    raise ModelFileError(
        f"{name}: weights do not fit the architecture in its manifest ({problem}); "
        "the file is incompatible with this batseg version"
    )


def _check_finite(state_dict: dict[str, Any], name: str) -> None:
    import torch

    bad = [k for k, tensor in state_dict.items() if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ModelFileError(
            f"{name}: {len(bad)} weight tensors hold NaN or infinite values (e.g. {bad[0]}); "
            "the model is broken, do not use it"
        )


def load_model(path: str | os.PathLike[str], device: str = "cpu", check_tumour_classes: bool = True) -> LoadedModel:
    """Verify a model file and build its network with the weights loaded, in eval mode.

    Order matters for hostile files: the manifest is validated (allow-listed classes, bounded
    sizes), the weights member is size-capped before it is decompressed, and the tensor names
    and shapes of its header are compared with a storage-free copy of the network, all before
    anything the size of the network is allocated; NaN or infinite weights are refused.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    manifest, weights = _read_verified(path)
    if check_tumour_classes:
        check_classes(manifest)
    _check_weight_shapes(manifest, weights, path.name)
    try:
        state_dict = load(weights)
    except (SafetensorError, ValueError) as exc:
        raise ModelFileError(f"{path.name}: weights are unreadable ({exc}); the file is corrupt") from None
    _check_finite(state_dict, path.name)
    network = network_from_manifest(manifest)
    try:
        network.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{path.name}: weights do not fit the architecture in its manifest ({first}); "
            "the file is incompatible with this batseg version"
        ) from None
    network.to(device).eval()
    return LoadedModel(path=path, manifest=manifest, network=network)
