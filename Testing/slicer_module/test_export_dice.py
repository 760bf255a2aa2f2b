"""The export's editing effort scores Dice with the engine's `batseg.metrics.dice` (issue 20, item 9),
the figure `batseg evaluate` reports, and loads the engine's metrics only when it exports: the
module itself still loads in a Slicer without scipy (dependencies not installed yet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from batseg import metrics
from batseg.labels import TUMOUR_CLASSES
from BATsegSlicerLib import export

MODULE_DIR = Path(__file__).resolve().parents[2] / "BATsegSlicer"


def test_editing_effort_scores_the_engines_dice(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    ai = rng.integers(0, 3, (6, 20, 20)).astype(np.uint8)  # classes 1 and 2 only
    reviewed = ai.copy()
    reviewed[rng.random(ai.shape) < 0.1] = 1
    effort = export.editing_effort(ai, reviewed, voxel_mm3=0.5)["dice_ai_vs_reviewed"]
    for tumour in TUMOUR_CLASSES[:2]:
        assert effort[tumour.key] == metrics.dice(ai == tumour.value, reviewed == tumour.value)
    assert effort["astrocytoma"] is None and effort["hemangioblastoma"] is None  # in neither: nothing edited
    # The engine's function is the one used: a change there shows here.
    monkeypatch.setattr(metrics, "dice", lambda first, second: 0.25)
    assert set(export.editing_effort(ai, reviewed, 0.5)["dice_ai_vs_reviewed"].values()) == {0.25, None}


def test_the_export_module_loads_without_scipy() -> None:
    code = ("import sys; sys.modules['scipy'] = None; import BATsegSlicerLib.export, BATsegSlicerLib.logic; "
            "print('batseg.metrics' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=MODULE_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
