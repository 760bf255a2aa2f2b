"""The panel's Fine-tune confirmation shows the budget the engine will run and its expected duration
(issue 16, item 3); the button goes through `batseg train --finetune-from`, the path whose model file
keeps the parent's postprocessing and budget (item 2, tested through the CLI in Testing/test_finetune.py)."""

from __future__ import annotations

from BATsegSlicerLib import commands
from BATsegSlicerLib.dialog_texts import fine_tune_question
from BATsegSlicerLib.models import read_manifest


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


def test_the_button_asks_that_question_before_starting(mrml, tmp_path, monkeypatch) -> None:
    """Fine-tune pressed (job_control, which the Widget's button calls): the question comes first,
    Cancel starts nothing, OK starts the run with the panel's epochs and device."""
    from batseg.models import default_model_path

    from BATsegSlicerLib.install_flow import InstallFlow
    from BATsegSlicerLib.job_control import JobControl
    from BATsegSlicerLib.jobs import JobState
    from BATsegSlicerLib.logic import BATsegLogic
    from BATsegSlicerLib.panel_state import PanelState
    from panel_fakes import ScriptedDialogs
    from slicer_test_support import fake_interpreter

    monkeypatch.setenv("BATSEG_FAKE_MODE", "train")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_interpreter(tmp_path))
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "dataset.json").write_text('{"numTraining": 2}')
    state = PanelState(logic.getParameterNode)

    def sync() -> None:  # what the Widget writes from its fields just before
        state.parameters.set_text("ExportFolder", str(exports))
        state.parameters.set_text("Device", "cpu")
        state.parameters.epochs = 5

    model = str(default_model_path())
    declined = ScriptedDialogs(False)
    control = JobControl(state, logic, declined, InstallFlow(check=lambda: []), print)
    assert control.fine_tune_pressed(model, sync, lambda job: None, cuda=None) is None
    [question] = declined.asked
    assert question == fine_tune_question(read_manifest(model), str(exports), 2, 5, "cpu")
    assert "250 iterations" in question and state.job is None
    assert all(entry.shipped for entry in logic.models()[0])  # nothing was trained

    control = JobControl(state, logic, ScriptedDialogs(True), InstallFlow(check=lambda: []), print)
    job = control.fine_tune_pressed(model, sync, lambda job: None, cuda=None)
    assert job is state.job and state.fine_tuning and job.wait(timeout=60) is JobState.SUCCEEDED, job.full_log()
    args = job.process.args
    assert (args[args.index("--epochs") + 1], args[args.index("--device") + 1]) == ("5", "cpu")
    assert control.new_model(job) is job.result and not job.result.shipped


def test_the_button_runs_batseg_train_finetune_from_without_a_budget_of_its_own() -> None:
    """The engine then takes the parent's budget and postprocessing, as on the command line."""
    command = commands.build_train_command("python", "m.batseg", "/exports", "/out/new.batseg", 50, "cpu")
    assert command[1:6] == ["-m", "batseg", "train", "--finetune-from", "m.batseg"]
    assert not {"--iterations-per-epoch", "--val-iterations", "--batch-size", "--patch",
                "--foreground-oversampling", "--lr"} & set(command)
