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
    tree = ast.parse((TRAINING / f"{module}.py").read_text())
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
    tree = ast.parse((TRAINING / f"{module}.py").read_text())
    body = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    calls = [n.func.id for n in ast.walk(body) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "start_from" in calls and "load_initial_weights" not in calls
    source = ast.unparse(body)
    assert "initial_weights and" not in source and "current_epoch" not in source  # no rule of its own


SHIPPED = Path(__file__).resolve().parents[1] / "BATsegSlicer" / "Resources" / "Models" / "batseg-light-phantoms-0.6.0.batseg"


def shipped_manifest() -> dict:
    from batseg.model_file import read_manifest

    return read_manifest(SHIPPED)


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
