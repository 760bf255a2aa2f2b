"""The bundled sample cases (one phantom per tumour type) and their integrity check.

The files live in BATsegSlicer/Resources/SampleData/ (in a wheel: inside the package, see
`batseg.resources`) next to `sample_data.json`, which lists for
each case its name, image, label and thumbnail files with their SHA-256 digests. They are made
by scripts/make_sample_data.py (fixed seeds, deterministic). Synthetic data; not for clinical use.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from batseg.errors import BATsegError
from batseg.resources import shipped_dir

SAMPLE_DIR = shipped_dir("SampleData")
MANIFEST_NAME = "sample_data.json"
FILE_KINDS = ("image", "label", "thumbnail")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(sample_dir: Path) -> dict:
    path = sample_dir / MANIFEST_NAME
    if not path.is_file():
        raise BATsegError(f"sample data manifest {path} is missing: reinstall BATsegSlicer or run "
                          "scripts/make_sample_data.py")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BATsegError(f"sample data manifest {path} is not valid JSON ({exc.msg}): reinstall BATsegSlicer "
                          "or run scripts/make_sample_data.py") from None


def sample_cases(sample_dir: Path | None = None) -> list[dict]:
    """The sample cases as listed in the manifest (name, tumour type, file names, digests)."""
    return list(_manifest(sample_dir or SAMPLE_DIR)["cases"])


def sample_path(name: str, kind: str = "image", sample_dir: Path | None = None) -> Path:
    """Path of a sample case's image (or label / thumbnail), after checking its SHA-256."""
    if kind not in FILE_KINDS:
        raise BATsegError(f"unknown sample file kind {kind!r}: use one of {', '.join(FILE_KINDS)}")
    folder = sample_dir or SAMPLE_DIR
    cases = {c["name"]: c for c in sample_cases(folder)}
    if name not in cases:
        raise BATsegError(f"no sample case is called {name!r}: available are {', '.join(sorted(cases))}")
    entry = cases[name]
    path = folder / entry[kind]
    if not path.is_file():
        raise BATsegError(f"sample file {path} is missing: reinstall BATsegSlicer or run scripts/make_sample_data.py")
    if sha256_of(path) != entry[f"{kind}_sha256"]:
        raise BATsegError(f"sample file {path} was modified (SHA-256 mismatch): reinstall BATsegSlicer or run "
                          "scripts/make_sample_data.py")
    return path
