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
