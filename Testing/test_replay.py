"""Fine-tuning's replay data: phantoms regenerated from the parent's recorded seed; inherited postprocessing."""

from __future__ import annotations

import json
from pathlib import Path

from batseg.progress import Progress
from batseg.training.finetune import inherited_postprocessing
from batseg.training.replay import phantom_recipe, replay_dataset


def phantom_parent(seed: int = 5, n: int = 2) -> dict:
    """The manifest fields a model trained on `batseg phantom -n n --seed seed` carries."""
    return {
        "name": "m", "version": "1.0.0",
        "training": {"data": {"sources": ["/machine/that/trained/it/Dataset501"], "num_cases": n}},
        "nnunet": {"dataset_json": {"numTraining": n, "batseg": {
            "generator": "batseg.phantoms", "version": "0.0.1", "seed": seed, "healthy_fraction": 0.5}}},
    }


def logging_progress() -> tuple[Progress, list[str]]:
    said: list[str] = []
    progress = Progress("quiet")
    progress.log = said.append  # type: ignore[method-assign]
    return progress, said


def test_a_phantom_parent_replays_its_regenerated_training_set(tmp_path: Path) -> None:
    progress, said = logging_progress()
    replayed = replay_dataset(phantom_parent(), None, tmp_path, progress)
    assert replayed is not None and len(replayed.cases) == 2
    recorded = json.loads((replayed.folder / "dataset.json").read_text())["batseg"]
    assert (recorded["seed"], recorded["healthy_fraction"]) == (5, 0.5)
    assert any("not identical" in line for line in said)  # another generator version made the original
    images = sorted(p.name for p in (replayed.folder / "imagesTr").iterdir())
    # A second fine-tuning reuses the set instead of regenerating it.
    again = replay_dataset(phantom_parent(), None, tmp_path, progress)
    assert again.folder == replayed.folder and "regenerated earlier" in said[-1]
    assert sorted(p.name for p in (again.folder / "imagesTr").iterdir()) == images


def test_a_parent_trained_with_t2_negatives_replays_them(tmp_path: Path) -> None:
    manifest = phantom_parent(seed=6)
    manifest["nnunet"]["dataset_json"]["batseg"].update(healthy_fraction=0.0, t2_negative_fraction=0.5)
    assert phantom_recipe(manifest)["t2_fraction"] == 0.5
    replayed = replay_dataset(manifest, None, tmp_path, logging_progress()[0])
    cases = json.loads((replayed.folder / "phantoms.json").read_text())["cases"]
    assert sorted(c["contrast"] for c in cases.values()) == ["t1gd", "t2"]
    assert "_t20.5" in str(replayed.folder)  # not mistaken for the T1-only set of the same seed


def test_other_parents_without_their_data_train_on_new_cases_with_a_warning(tmp_path: Path) -> None:
    manifest = phantom_parent()
    del manifest["nnunet"]["dataset_json"]["batseg"]
    assert phantom_recipe(manifest) is None
    progress, said = logging_progress()
    assert replay_dataset(manifest, None, tmp_path, progress) is None
    assert "WARNING" in said[-1] and "--replay-data" in said[-1]
    assert not (tmp_path / "replay").exists()


def test_the_parents_tuned_minimum_volume_is_inherited_and_marked() -> None:
    parent = {**phantom_parent(), "postprocessing": {"fill_holes": True, "min_volume_mm3": 500.0, "chosen_on": "20 cases"}}
    child = inherited_postprocessing(parent)
    assert child["min_volume_mm3"] == 500.0 and child["fill_holes"] is True
    assert child["chosen_on"].startswith("inherited from the parent m 1.0.0 (chosen on 20 cases)")
    assert "tune-postprocess" in child["chosen_on"]
    assert inherited_postprocessing(phantom_parent()) is None
