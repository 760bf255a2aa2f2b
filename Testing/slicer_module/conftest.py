"""Fixtures for the headless tests of the Slicer module's Logic (slicer-core, no application).

`mrml` gives every test a fresh real MRML scene with the Colors, Volumes, Segmentations and
Subject Hierarchy logics registered, exactly as docs/SLICER.md describes, and installs it as
`slicer.mrmlScene` / `slicer.modules` so that `slicer.util` helpers work. The module folder
(BATsegSlicer/) is put on sys.path, as Slicer does when it loads the module.

Why `slicer` is imported at the top of this file: the `slicer` package extends its own
__path__ with every `slicer/` folder on sys.path when it is first imported, and then imports
every module in them. This test folder is called `slicer`, and pytest puts Testing/ on
sys.path while collecting Testing/test_*.py; importing `slicer` here, which pytest does before
collecting any test module, keeps this folder out of the package. `test_slicer_package_is_clean`
in test_segmentation.py fails if that ever changes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "BATsegSlicer"
# The real scans of ../shared (not in a clone); BATSEG_TEST_SHARED names another shared folder,
# or a missing one (BATSEG_TEST_SHARED=missing) to run as a clone does. Same rule as
# Testing/inference_helpers.py, which this folder cannot import.
REAL_DATA = Path(os.environ.get("BATSEG_TEST_SHARED") or REPO.parent / "shared") / "data" / "real-spine-mri"
T2_PSR = REAL_DATA / "sct_testing_data" / "t2" / "t2.nii.gz"

if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")


@pytest.fixture
def mrml():
    """A fresh scene with real module logics, installed as slicer.mrmlScene / slicer.modules."""
    from BATsegSlicerLib.headless_scene import install_scene

    saved = (getattr(slicer, "mrmlScene", None), getattr(slicer, "modules", None))
    installed = install_scene(slicer)
    yield installed
    slicer.mrmlScene, slicer.modules = saved
    installed.scene.Clear(1)


@pytest.fixture(scope="session")
def synthetic_scan(tmp_path_factory) -> Path:
    """A synthetic sagittal scan file (written once per session; see write_synthetic_scan)."""
    from slicer_test_support import write_synthetic_scan

    return write_synthetic_scan(tmp_path_factory.mktemp("synthetic") / "scan.nii.gz")


@pytest.fixture
def volume(mrml, synthetic_scan):
    """A synthetic sagittal (PSR) scan loaded as a scalar volume, as Slicer loads a file.

    For every test that needs a volume but not real anatomy: it runs without ../shared.
    """
    node = mrml.volumes.AddArchetypeVolume(str(synthetic_scan), "scan", 0)
    assert node is not None and node.GetImageData() is not None
    return node


@pytest.fixture
def t2_volume(mrml):
    """The real T2w cervical cord scan (sagittal slices, PSR), loaded as a scalar volume
    (for the realism checks; skipped with its reason where ../shared is missing)."""
    if not T2_PSR.is_file():
        pytest.skip(f"real test data missing: {T2_PSR}")
    node = mrml.volumes.AddArchetypeVolume(str(T2_PSR), "t2", 0)
    assert node is not None and node.GetImageData() is not None
    return node
