"""The panel's Fine-tune confirmation shows the budget the engine will run and its expected duration
(issue 16, item 3); the button goes through `batseg train --finetune-from`, the path whose model file
keeps the parent's postprocessing and budget (item 2, tested through the CLI in Testing/test_finetune.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from BATsegSlicerLib import commands
from BATsegSlicerLib.models import read_manifest
from BATsegSlicerLib.panel_state import fine_tune_question

MODULE = Path(__file__).resolve().parents[2] / "BATsegSlicer"


def shipped_manifest() -> dict:
    """The shipped model's manifest, with the budget of 0.6.0 and 0.7.0 pinned (50 iterations of
    batch 4, patch 16x64x64, 5 validation iterations, oversampling 0.5) and no recorded timing."""
    from batseg.models import default_model_path

    manifest = read_manifest(str(default_model_path()))
    manifest["nnunet"]["plans"]["batseg_training"].update(
        iterations_per_epoch=50, val_iterations=5, batch_size=4, patch_size=None, foreground_oversampling=0.5)
    manifest["nnunet"]["plans"]["configurations"]["3d_fullres"].update(batch_size=4, patch_size=[16, 64, 64])
    for key in ("median_seconds_per_epoch", "device"):
        manifest["training"].pop(key, None)
    return manifest


def test_the_question_names_the_inherited_budget_and_its_duration() -> None:
    manifest = shipped_manifest()
    question = fine_tune_question(manifest, "/exports", 2, 50, "cpu")
    assert "2 exported case(s) in /exports" in question and "on the CPU" in question
    assert "50 epochs x 50 iterations = 2,500 iterations (batch 4, patch 16x64x64, foreground oversampling 0.5" in question
    assert " h of training" in question  # hours on a 2-core CPU: said before it starts
    short = fine_tune_question(manifest, "/exports", 2, 5, "cpu")
    assert "250 iterations" in short and " min of training" in short
    assert "a GPU" in fine_tune_question(manifest, "/exports", 2, 50, "auto", cuda_available=True)
    assert "on the CPU" in fine_tune_question(manifest, "/exports", 2, 50, "auto", cuda_available=None)
    assert "original training data in /replay" in fine_tune_question(manifest, "/exports", 2, 50, "cpu", "/replay")


def test_the_widget_asks_that_question_before_starting() -> None:
    tree = ast.parse((MODULE / "BATsegSlicer.py").read_text(encoding="utf-8"))
    handler = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "onFineTune")
    source = ast.unparse(handler)
    assert "fine_tune_question(" in source and "confirmOkCancelDisplay(question)" in source
    assert source.index("confirmOkCancelDisplay(question)") < source.index("startFineTuning(")


def test_the_button_runs_batseg_train_finetune_from_without_a_budget_of_its_own() -> None:
    """The engine then takes the parent's budget and postprocessing, as on the command line."""
    command = commands.build_train_command("python", "m.batseg", "/exports", "/out/new.batseg", 50, "cpu")
    assert command[1:6] == ["-m", "batseg", "train", "--finetune-from", "m.batseg"]
    assert not {"--iterations-per-epoch", "--val-iterations", "--batch-size", "--patch",
                "--foreground-oversampling", "--lr"} & set(command)
