"""Fine-tuning over several rounds (issue 16): the training modules' import direction, one rule
for starting from the parent's weights on one device and in DDP."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

TRAINING = Path(__file__).resolve().parents[1] / "BATsegSlicer" / "batseg" / "training"


def training_imports(module: str) -> set[str]:
    """The batseg.training modules a module imports, at module level or inside functions."""
    tree = ast.parse((TRAINING / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("batseg.training."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("batseg.training.")}
    return found - {module}


def test_training_modules_import_each_other_in_one_direction() -> None:
    graph = {p.stem: training_imports(p.stem) for p in TRAINING.glob("*.py") if p.stem != "__init__"}
    assert "finetune" not in graph["run"] | graph["ddp"]
    assert "run" not in graph["ddp"]
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in visiting, f"import cycle: {' -> '.join(path + (node,))}"
        if node in done:
            return
        visiting.add(node)
        for child in graph.get(node, ()):
            visit(child, path + (node,))
        visiting.discard(node)
        done.add(node)

    for module in graph:
        visit(module, ())


@pytest.mark.parametrize("epoch, loaded", [(0, True), (3, False)])
def test_parent_weights_unless_a_checkpoint_was_resumed(monkeypatch: pytest.MonkeyPatch, epoch: int, loaded: bool) -> None:
    """--resume that finds no checkpoint leaves epoch 0: the parent's weights, as without --resume."""
    from batseg.training import initial_weights

    calls = []
    monkeypatch.setattr(initial_weights, "load_initial_weights", lambda trainer, path: calls.append(path))
    trainer = SimpleNamespace(current_epoch=epoch)
    assert initial_weights.start_from(trainer, "parent.batseg") is loaded
    assert calls == (["parent.batseg"] if loaded else [])
    assert initial_weights.start_from(trainer, None) is False


@pytest.mark.parametrize("module, function", [("run", "train_fold"), ("ddp", "_worker")])
def test_both_training_paths_use_the_same_rule(module: str, function: str) -> None:
    tree = ast.parse((TRAINING / f"{module}.py").read_text(encoding="utf-8"))
    body = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    calls = [n.func.id for n in ast.walk(body) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "start_from" in calls and "load_initial_weights" not in calls
    source = ast.unparse(body)
    assert "initial_weights and" not in source and "current_epoch" not in source  # no rule of its own


def shipped_manifest() -> dict:
    """The shipped model's manifest with a known budget and postprocessing (those of 0.6.0: 50
    iterations, 5 validation iterations, batch 4, patch 16x64x64, oversampling 0.5, 500 mm3),
    whichever model is shipped; no recorded timing."""
    from batseg.model_file import read_manifest
    from batseg.models import default_model_path

    manifest = read_manifest(default_model_path())
    manifest.update(name="batseg-light-phantoms", version="0.6.0")
    manifest["postprocessing"] = {"fill_holes": True, "min_volume_mm3": 500.0, "one_type_per_lesion": False,
                                  "chosen_on": "20 validation cases"}
    plans = manifest["nnunet"]["plans"]
    plans["batseg_training"].update(iterations_per_epoch=50, val_iterations=5, batch_size=4, patch_size=None,
                                    foreground_oversampling=0.5)
    plans["configurations"]["3d_fullres"].update(batch_size=4, patch_size=[16, 64, 64])
    for key in ("median_seconds_per_epoch", "epochs_timed", "device"):
        manifest["training"].pop(key, None)
    return manifest


def test_packaging_keeps_the_parent_and_its_inherited_postprocessing(tmp_path: Path) -> None:
    """What finetune() puts in the run record reaches the model file's manifest (schema-valid)."""
    import json

    from batseg.manifest_schema import validate_manifest
    from batseg.postprocess_settings import recommended_min_volume
    from batseg.training.finetune import inherited_postprocessing
    from batseg.training.package import build_manifest

    parent = shipped_manifest()
    inherited = inherited_postprocessing(parent)
    record = {"data": {"sources": ["/x"], "description": "phantoms", "num_cases": 3}, "options": {},
              "device": {"type": "cpu", "threads": 2}, "parent": {"name": "p", "version": "0.6.0"},
              "postprocessing": inherited}
    (tmp_path / "batseg_training.json").write_text(json.dumps(record))
    checkpoint = {"current_epoch": 2, "trainer_name": "nnUNetTrainerBATseg", "logging": {
        "epoch_start_timestamps": [0.0, 10.0, 30.0], "epoch_end_timestamps": [9.0, 21.0, 40.0],
        "train_losses": [1.0, 0.5]}}
    plans = parent["nnunet"]["plans"]
    manifest = build_manifest(tmp_path, "all", plans, parent["nnunet"]["dataset_json"], checkpoint, "child", "0.7.0")
    assert manifest["postprocessing"] == inherited and recommended_min_volume(manifest) == 500.0
    assert manifest["postprocessing"]["chosen_on"].startswith("inherited from the parent batseg-light-phantoms 0.6.0")
    assert manifest["parent"] == record["parent"]
    assert manifest["training"]["median_seconds_per_epoch"] == 10.0 and manifest["training"]["epochs_timed"] == 3
    assert manifest["training"]["device"] == {"type": "cpu", "threads": 2}
    validate_manifest({**manifest, "weights_sha256": "0" * 64}, "child.batseg")


# ------------------------------------------------------------------ the parent's budget (item 3)


def test_a_finetuning_takes_the_parents_budget_unless_told_otherwise() -> None:
    from batseg.training.finetune import _options_from_parent
    from batseg.training.options import TrainingOptions

    parent = shipped_manifest()  # trained with 50 iterations, 5 validation iterations, batch 4, oversampling 0.5
    cli = TrainingOptions(progress="quiet")  # nnU-Net's defaults, as `batseg train` fills them
    options = _options_from_parent(parent, cli, explicit=set())
    assert (options.iterations_per_epoch, options.val_iterations, options.batch_size) == (50, 5, 4)
    assert options.patch_size == [16, 64, 64] and options.foreground_oversampling == 0.5
    assert (options.epochs, options.lr) == (50, 1e-3)
    given = TrainingOptions(progress="quiet", iterations_per_epoch=7, foreground_oversampling=0.9, batch_size=2)
    options = _options_from_parent(parent, given, explicit={"iterations_per_epoch", "foreground_oversampling", "batch_size"})
    assert (options.iterations_per_epoch, options.foreground_oversampling, options.batch_size) == (7, 0.9, 2)
    assert options.val_iterations == 5


def test_the_command_line_says_which_budget_values_were_given() -> None:
    from batseg.cli import build_parser
    from batseg.commands.train import explicit_options, options_from_args

    base = ["train", "--data", "d", "--output", "o.batseg"]
    args = build_parser().parse_args(base + ["--finetune-from", "m.batseg"])
    assert explicit_options(args) == set()
    options = options_from_args(args)  # training from scratch: nnU-Net's defaults
    assert (options.iterations_per_epoch, options.val_iterations, options.foreground_oversampling) == (250, 50, 0.33)
    args = build_parser().parse_args(base + ["--iterations-per-epoch", "9", "--patch", "8", "32", "32", "--val-iterations",
                                             "1", "--batch-size", "3", "--foreground-oversampling", "0.4", "--epochs", "2"])
    assert explicit_options(args) == {"iterations_per_epoch", "patch_size", "val_iterations", "batch_size",
                                      "foreground_oversampling", "epochs"}


def test_the_expected_duration_scales_the_parents_measured_epoch_time() -> None:
    from batseg.training import budget

    parent = shipped_manifest()
    plan = budget.finetune_budget(parent)
    assert plan.iterations == 2500 and plan.patch_size == (16, 64, 64)
    # No timing recorded (0.6.0 predates it): the reference CPU's cost per voxel.
    cpu = budget.expected_duration(parent, plan, "cpu")
    assert cpu.training_seconds == pytest.approx(
        50 * (50 + budget.VALIDATION_COST * 5) * 4 * 16 * 64 * 64 * budget.CPU_SECONDS_PER_VOXEL["light"])
    assert "2-core CPU" in cpu.basis
    # A parent that recorded 60 s per epoch on a CPU: the same budget takes 50 x 60 s; half the batch, half.
    timed = {**parent, "training": {**parent["training"], "median_seconds_per_epoch": 60.0, "device": {"type": "cpu"}}}
    assert budget.expected_duration(timed, plan, "cpu").training_seconds == pytest.approx(3000.0)
    half = budget.finetune_budget(timed, batch_size=2)
    assert budget.expected_duration(timed, half, "cpu").training_seconds == pytest.approx(1500.0)
    assert budget.expected_duration(timed, plan, "cuda").training_seconds < 3000.0 / 5  # CPU timing not used on a GPU
    assert budget.format_duration(50 * 60) == "about 50 min" and budget.format_duration(3 * 3600) == "about 3.0 h"
    text = budget.finetune_plan(timed, new_cases=2, replay=False)
    assert text.startswith("50 epochs x 50 iterations = 2,500 iterations (batch 4, patch 16x64x64, foreground "
                           "oversampling 0.5, 5 validation iterations per epoch): about 50 min of training")


def test_the_budget_module_imports_neither_torch_nor_nnunet() -> None:
    """The Slicer panel imports it in Slicer's own Python."""
    import subprocess
    import sys

    code = ("import sys; import batseg.training.budget as b, batseg.training.replay; "
            "assert not {'torch', 'nnunetv2', 'numpy'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ each case preprocessed once (item 4)


def test_new_cases_are_drawn_more_often_but_stored_once(tmp_path: Path) -> None:
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from training_data import make_dataset

    from batseg.training.datasets import merge_for_finetuning, read_raw_dataset

    new = read_raw_dataset(make_dataset(tmp_path / "new", n_cases=2, prefix="new"))
    old = read_raw_dataset(make_dataset(tmp_path / "old", n_cases=6))
    older = read_raw_dataset(make_dataset(tmp_path / "r1", n_cases=1, prefix="fix"))
    (tmp_path / "raw").mkdir()
    merged = merge_for_finetuning(new, [("old", old), ("r1", older)], tmp_path / "raw", "Merged")
    folder = tmp_path / "raw" / merged.name
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    assert len(images) == 2 + 6 + 1 and "r1_fix000_0000.nii.gz" in images  # each case once
    # 2 new cases among 7 replayed: each drawn 2x, so 4 / (4 + 7) = 36% of the draws (target 30%).
    assert merged.repeats == {"new_new000": 2, "new_new001": 2}
    assert "batseg" not in json.loads((folder / "dataset.json").read_text())
    again = merge_for_finetuning(new, [("old", old), ("r1", older)], tmp_path / "raw", "Merged")
    assert again.name == merged.name  # reused: preprocessed once across runs too
    alone = merge_for_finetuning(new, [], tmp_path / "raw", "Alone")
    assert alone.repeats == {} and alone.replayed_cases == 0


def test_the_trainer_draws_cases_as_often_as_their_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through nnU-Net's own loader: a case listed r times is drawn r times as often; validation once."""
    import numpy as np
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from batseg.training.options import TrainingOptions
    from batseg.training.trainer import nnUNetTrainerBATseg

    keys = ["new_a", "old_b", "old_c"]
    shared = list(keys)  # nnU-Net gives both datasets the same list with fold "all"
    monkeypatch.setattr(nnUNetTrainer, "get_tr_and_val_datasets",
                        lambda self: (SimpleNamespace(identifiers=shared), SimpleNamespace(identifiers=shared)))
    trainer = object.__new__(nnUNetTrainerBATseg)
    trainer.options = TrainingOptions(progress="quiet", case_repeats={"new_a": 4})
    train, validation = trainer.get_tr_and_val_datasets()
    assert sorted(train.identifiers) == ["new_a"] * 4 + ["old_b", "old_c"]
    assert validation.identifiers == keys
    loader = object.__new__(nnUNetDataLoader)
    loader.indices, loader.batch_size, loader.infinite, loader.sampling_probabilities = train.identifiers, 2, True, None
    np.random.seed(0)
    drawn = [k for _ in range(3000) for k in loader.get_indices()]
    assert drawn.count("new_a") / len(drawn) == pytest.approx(4 / 6, abs=0.02)
