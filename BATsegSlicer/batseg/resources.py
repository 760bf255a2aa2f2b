"""Where the files the engine ships with are: the shipped models and the sample cases.

In the source tree and in the Slicer extension they live in the module's Resources folder,
beside the `batseg` package (BATsegSlicer/Resources/Models, .../SampleData). A wheel built by
`pip install .` carries that folder inside the package as `batseg/_shipped` (pyproject.toml),
because nothing outside a package's folder is installed with it. The packaged copy is used when
it exists, else the Resources folder.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED = PACKAGE_DIR / "_shipped"
SOURCE_TREE = PACKAGE_DIR.parent / "Resources"


def shipped_dir(name: str) -> Path:
    """The folder `name` ("Models" or "SampleData") of the shipped resources."""
    packaged = PACKAGED / name
    return packaged if packaged.is_dir() else SOURCE_TREE / name
