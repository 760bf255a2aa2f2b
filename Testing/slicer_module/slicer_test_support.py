"""Helpers shared by the Slicer module tests (a uniquely named module: several conftest.py files
may exist in the suite, so helpers are not imported from `conftest`)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path


def make_model_file(path: Path, name: str = "fake", weights: bytes = b"weights", title: str = "Fake model",
                    classes: list | None = None) -> Path:
    """A tiny model file with a minimal valid manifest (for model-list tests, not inference)."""
    from batseg.labels import TUMOUR_CLASSES
    from batseg.network import topology_kwargs

    manifest = {
        "format": "batseg-model", "format_version": 1, "name": name, "version": "0.0.1", "title": title,
        "architecture": {"topology": "light", "arch_kwargs": topology_kwargs("light"), "num_classes": 5, "input_channels": 1,
                         "field_head": {"channels": 4, "activation": "sigmoid"}},
        "classes": classes if classes is not None else
        [{"value": c.value, "key": c.key, "name": c.name, "color": list(c.color)} for c in TUMOUR_CLASSES],
        "input": {"contrast": "T1Gd", "target_spacing": [3.3, 0.47, 0.47], "normalization": "zscore",
                  "patch_size": [12, 384, 384]},
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "disclaimer": "test file",
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("weights.safetensors", weights)
    return path


def processes_alive(pids: list[int]) -> list[int]:
    """The pids among `pids` that still run (zombies waiting to be reaped count as gone)."""
    import psutil

    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive

