"""Fine-tuning's replay data: the lineage's original data over several rounds, phantoms regenerated
from the original seed; inherited postprocessing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from training_data import make_dataset  # noqa: E402

from batseg.progress import Progress  # noqa: E402
from batseg.training.finetune import inherited_postprocessing  # noqa: E402
from batseg.training.replay import phantom_recipe, replay_dataset  # noqa: E402


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
    # A second round names the model it was chosen for, not a chain of "inherited from"s.
    grandchild = inherited_postprocessing({**parent, "version": "1.1.0", "postprocessing": child})
    assert grandchild["chosen_on"].startswith(
        "inherited from the parent m 1.1.0, which inherited it from m 1.0.0 (chosen on 20 cases); rerun")
    assert grandchild["chosen_on"].count("inherited from") == 1 and grandchild["min_volume_mm3"] == 500.0


# ------------------------------------------------------------------ lineage over several rounds (issue 16, item 1)

def child_of(parent: dict, new_folder: Path, new_cases: int, version: str, **extra) -> dict:
    """The manifest fields fine-tuning writes for a child of `parent` (its merged data's dataset.json
    no longer carries a generator record; sources are what that round trained on)."""
    from batseg.training.replay import child_lineage

    lineage = child_lineage(parent, new_folder, new_cases, f"m {version}", **extra)
    return {
        "name": "m", "version": version,
        "training": {"data": {"sources": [str(new_folder), "/work/replay/whatever"], "num_cases": 99, **lineage}},
        "nnunet": {"dataset_json": {"numTraining": 99}},
        "parent": {"name": "m", "version": parent["version"], "new_cases": new_cases, "replay_cases": 12},
    }


def test_the_lineage_keeps_the_original_data_whatever_the_number_of_rounds(tmp_path: Path) -> None:
    from batseg.training.replay import earlier_rounds, original_data

    root = phantom_parent(seed=5, n=12)
    child = child_of(root, tmp_path / "round1", 3, "1.1.0")
    grandchild = child_of(child, tmp_path / "round2", 4, "1.2.0")
    great = child_of(grandchild, tmp_path / "round3", 1, "1.3.0")
    for model in (root, child, grandchild, great):
        assert phantom_recipe(model)["seed"] == 5 and phantom_recipe(model)["num_cases"] == 12
        assert original_data(model)["sources"] == ["/machine/that/trained/it/Dataset501"]
    assert [(r["model"], r["num_cases"]) for r in earlier_rounds(great)] == [
        ("m 1.1.0", 3), ("m 1.2.0", 4), ("m 1.3.0", 1)]
    assert earlier_rounds(root) == []


def test_a_grandchild_replays_the_original_cases_not_the_last_rounds(tmp_path: Path) -> None:
    from batseg.training.replay import earlier_round_datasets

    original = make_dataset(tmp_path / "original", n_cases=4)
    round1 = make_dataset(tmp_path / "round1", n_cases=2, prefix="new")
    round2 = make_dataset(tmp_path / "round2", n_cases=1, prefix="newer")
    root = {"name": "m", "version": "1.0.0", "training": {"data": {"sources": [str(original)], "num_cases": 4}}}
    child = child_of(root, round1, 2, "1.1.0")
    progress, said = logging_progress()
    assert replay_dataset(child, None, tmp_path, progress).folder == original
    assert [d.folder for d in earlier_round_datasets(child, round2, progress)] == [round1]
    assert "replaying the new cases of m 1.1.0" in said[-1]
    # The same folder as this round's (an export folder that grew): its cases are the new ones.
    assert earlier_round_datasets(child, round1, progress) == []
    assert earlier_round_datasets(child, round2, progress, replay=False) == []
    gone = child_of(root, tmp_path / "deleted", 2, "1.1.0")
    assert earlier_round_datasets(gone, round2, progress) == [] and "not on this machine" in said[-1]


def test_a_given_replay_folder_becomes_the_lineages_original(tmp_path: Path) -> None:
    from batseg.training.replay import original_data

    child = child_of(phantom_parent(seed=5, n=12), tmp_path / "round1", 3, "1.1.0",
                     replay_dir=tmp_path / "copy", replay_cases=12)
    assert original_data(child)["sources"][0] == str(tmp_path / "copy")
    assert phantom_recipe(child)["seed"] == 5  # the fallback is kept
    # A given folder of `batseg phantom` data brings its own recipe (e.g. 140 phantoms of seed 2026).
    given = {"numTraining": 140, "batseg": {"generator": "batseg.phantoms", "seed": 2026, "t2_negative_fraction": 0.125}}
    child = child_of(phantom_parent(seed=5, n=12), tmp_path / "round1", 3, "1.1.0", replay_dir=tmp_path / "copy",
                     replay_cases=140, replay_dataset_json=given)
    assert phantom_recipe(child)["seed"] == 2026 and phantom_recipe(child)["num_cases"] == 140
    assert phantom_recipe(child)["t2_fraction"] == 0.125


def test_children_written_before_the_lineage_record_are_read_as_written() -> None:
    """Before issue 16 a child's sources were [new, replayed] and its dataset.json the new cases'."""
    from batseg.training.replay import earlier_rounds, original_data

    legacy = {
        "name": "m", "version": "1.1.0",
        "training": {"data": {"sources": ["/new/cases", "/replayed/original"], "num_cases": 18}},
        "nnunet": {"dataset_json": {"numTraining": 18, "batseg": {"generator": "batseg.phantoms", "seed": 9}}},
        "parent": {"name": "m", "version": "1.0.0", "new_cases": 3, "replay_cases": 12},
    }
    assert original_data(legacy) == {"sources": ["/replayed/original"], "num_cases": 12}
    assert phantom_recipe(legacy) is None  # seed 9 and 18 cases were the new data's, not the original's
    assert earlier_rounds(legacy) == [{"model": "m 1.1.0", "sources": ["/new/cases"], "num_cases": 3}]
    # A child that replayed nothing (e.g. the shipped 0.6.0, continued on its own regenerated data)
    # trained on its sources: they are its original data.
    own = {**legacy, "parent": {"name": "m", "version": "1.0.0", "new_cases": 240, "replay_cases": 0},
           "training": {"data": {"sources": ["/its/data"], "num_cases": 240}},
           "nnunet": {"dataset_json": {"numTraining": 240, "batseg": {"generator": "batseg.phantoms", "seed": 2026}}}}
    assert original_data(own)["sources"] == ["/its/data"] and phantom_recipe(own)["seed"] == 2026
    assert earlier_rounds(own) == []


def test_a_placeholder_folder_is_reported_as_recorded(tmp_path: Path) -> None:
    from batseg.training.replay import earlier_round_datasets

    # The shipped model records its rounds' folders as WORK_DIR/... (no machine path in a model file).
    shipped = {"name": "m", "version": "0.8.0", "training": {"data": {"original": {"sources": []}, "rounds": [
        {"model": "m 0.8.0", "sources": ["WORK_DIR/real_train/D511"], "num_cases": 240}]}}}
    progress, said = logging_progress()
    assert earlier_round_datasets(shipped, tmp_path / "new", progress) == []
    assert said[-1] == "the new cases of m 0.8.0 are not on this machine (recorded as WORK_DIR/real_train/D511): not replayed"
