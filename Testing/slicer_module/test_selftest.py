"""The module's own self-test (BATsegSlicerTest in BATsegSlicer.py) drives the Widget in a real
Slicer application. It is run here only where Slicer's Qt bindings exist; elsewhere it is
skipped, not faked (see docs/slicer_module.md for running it inside Slicer)."""

from __future__ import annotations

import pytest


def test_module_self_test_in_slicer():
    pytest.importorskip("qt", reason="needs the Slicer application")
    import slicer

    if getattr(slicer, "app", None) is None:
        pytest.skip("needs the Slicer application")
    import BATsegSlicer

    test = BATsegSlicer.BATsegSlicerTest()
    test.runTest()
