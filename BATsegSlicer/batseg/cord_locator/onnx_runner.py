"""The cord locator through ONNX Runtime, exported once into batseg's ONNX cache.

Why: loading torch costs about 2 s per process, more than the locator's whole work on a clinical
scan, and with a warm cache the tumour network's ONNX path never loads torch. So the locator's
network is exported to ONNX on first use (torch needed then only), checked against torch on a
small input, and cached beside the tumour models' exports with the same safeguards
(`batseg.inference.backends`: the entry is named by the hash of what it was made from, and its
record's size and sha256 are checked before ONNX Runtime reads it). Without onnxruntime, or when
the export fails, the caller falls back to torch.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from batseg.inference.backends import (
    EXPORT_CHECK_TOLERANCE, EXPORT_TAG, OPSET, _installed_version, _onnxruntime_version, _session, _write_sidecar,
    cache_dir, read_cached_onnx,
)

LOCATOR_EXPORT_TAG = f"{EXPORT_TAG}-cord-locator-2d"


def export_source(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the locator's export depends on; its hash names the cache entry."""
    return {"locator_weights_sha256": str(manifest["weights_sha256"]), "exporter": LOCATOR_EXPORT_TAG,
            "opset": OPSET, "torch": _installed_version("torch"), "onnxruntime": _onnxruntime_version()}


def cache_path(source: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(source, sort_keys=True).encode("ascii")).hexdigest()
    return cache_dir() / "onnx" / f"{key}.onnx"


def _export(locator_path: Path, destination: Path, source: dict[str, Any]) -> bytes:
    """Export, check against torch, write atomically with its record; the bytes."""
    import torch

    from batseg.atomic_files import write_atomically
    from batseg.cord_locator.locate import cached_locator

    network = cached_locator(str(locator_path))[0]
    example = torch.zeros((1, 1, 64, 96))
    exported: list[bytes] = []

    def write(temporary: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (example,), str(temporary), dynamo=False, opset_version=OPSET,
                              input_names=["planes"], output_names=["logits"],
                              dynamic_axes={"planes": {0: "n", 2: "rows", 3: "cols"},
                                            "logits": {0: "n", 2: "rows", 3: "cols"}})
        check = torch.randn((2, 1, 80, 48), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = network(check).numpy()
        got = _session(temporary, None, "cpu").run(None, {"planes": check.numpy()})[0]
        if not np.isfinite(got).all() or np.abs(got - expected).max() > EXPORT_CHECK_TOLERANCE * max(1.0, np.abs(expected).max()):
            raise ValueError("the ONNX export of the cord locator differs from torch")
        exported.append(temporary.read_bytes())

    write_atomically(destination, write, overwrite=True)
    _write_sidecar(destination, exported[0], source)
    return exported[0]


def onnx_session(locator_path: Path, manifest: dict[str, Any]) -> Any | None:
    """An ONNX Runtime session of the locator (exporting it once), or None to use torch instead."""
    try:
        source = export_source(manifest)
    except Exception:  # onnxruntime missing: BATsegError from _onnxruntime_version
        return None
    path = cache_path(source)
    data, _ = read_cached_onnx(path, source)
    if data is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = _export(locator_path, path, source)
        except Exception:  # any export or cache failure: torch does the work, as before
            return None
    return _session(data, None, "cpu")


def cord_probability_onnx(session: Any, planes: np.ndarray, batch: int = 8) -> np.ndarray:
    """Softmax probability of the cord for planes (n, rows, cols), in batches."""
    out = []
    for start in range(0, planes.shape[0], batch):
        logits = session.run(None, {"planes": np.ascontiguousarray(planes[start : start + batch, None], np.float32)})[0]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        out.append(shifted[:, 1] / shifted.sum(axis=1))
    return np.concatenate(out) if out else np.zeros(planes.shape, np.float32)
