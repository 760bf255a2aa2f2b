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



# The geometry of the real T2w scan these tests once needed (sct_testing_data/t2, 60 x 55 x 52
# voxels, sagittal slices, PSR) with anisotropic spacing, so no test relies on 1 mm voxels.
SYNTHETIC_SIZE = (60, 55, 52)  # i, j, k
SYNTHETIC_SPACING = (0.9, 1.1, 1.6)
SYNTHETIC_ORIGIN = (32.2, -31.8, -19.3)
PSR_DIRECTION = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # LPS columns: i posterior, j superior, k right


def write_synthetic_scan(path: Path, seed: int = 0, size: tuple[int, int, int] = SYNTHETIC_SIZE) -> Path:
    """A sagittal int16 'spine MRI' file: a bright cord-like cylinder along j in smooth noise.

    For the tests that need a volume, not anatomy: they then run in a clone without ../shared
    (the real scans stay for the realism checks, which skip with their reason when absent).
    """
    import numpy as np
    import SimpleITK as sitk
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    k, j, i = np.indices(tuple(reversed(size)), dtype=np.float32)
    centre_k, centre_i = size[2] / 2.0, size[0] / 2.0 + 3.0 * np.sin(j / size[1] * np.pi)
    cord = np.exp(-(((k - centre_k) / 6.0) ** 2 + ((i - centre_i) / 5.0) ** 2))
    noise = gaussian_filter(rng.normal(size=cord.shape), sigma=1.5)
    voxels = np.clip(300 + 700 * cord + 60 * noise / noise.std(), 0, None).astype(np.int16)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(SYNTHETIC_SPACING)
    image.SetOrigin(SYNTHETIC_ORIGIN)
    image.SetDirection(PSR_DIRECTION)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


FAKE_ENGINE = Path(__file__).with_name("fake_engine.py")


def fake_interpreter(folder: Path) -> str:
    """An executable in `folder` that stands in for the interpreter: it runs fake_engine.py with its args."""
    import stat
    import sys

    wrapper = folder / "fakepython"
    wrapper.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv = ['fake_engine'] + sys.argv[1:]\n"
                       f"runpy.run_path({str(FAKE_ENGINE)!r}, run_name='__main__')\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return str(wrapper)
