"""The retrain-loop benchmark's parts (scripts/bench_retrain_loop.py, issue 16), at tiny size.

A whole round (predict, export, fine-tune, score twice) takes minutes even at 1 case and 2
iterations, so the parts are tested here: the site-B profile, its data set, the step that
corrects an AI segmentation to the ground truth in a real MRML scene and exports it with the
module's own code (the result must be a data set `batseg train` accepts), and the verdicts.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.phantoms.acquisition import OVERRIDABLE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_retrain_loop.py"
spec = importlib.util.spec_from_file_location("bench_retrain_loop", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

MANIFEST = {"name": "batseg-test", "version": "1.2.3", "title": "Test model", "weights_sha256": "ab" * 32}


def test_site_b_profile_is_drawn_from_the_case_seed_outside_the_standard_ranges() -> None:
    assert set(bench.SITE_B) <= set(OVERRIDABLE)
    first, again, other = (bench.site_b_acquisition(s) for s in (11, 11, 12))
    assert first == again and first != other
    for key, (low, high) in bench.SITE_B.items():
        assert low <= first[key] <= high
    # The standard draw: coil floor 0.25-0.7, coil length 50-140 mm, bias 5-25 %.
    assert bench.SITE_B["coil_floor"][1] < 0.25 and bench.SITE_B["coil_length_mm"][1] < 50
    assert bench.SITE_B["bias_amplitude"][0] > 0.25


@pytest.fixture(scope="module")
def site_b(tmp_path_factory) -> Path:
    """Two small site-B cases (one with a lesion) in nnU-Net's raw layout."""
    return bench.write_site_b_dataset(tmp_path_factory.mktemp("siteb") / "pool", 2, seed=3, matrix=64, n_slices=5)


def test_site_b_dataset_is_a_training_set_and_is_reused(site_b: Path) -> None:
    from batseg.training.datasets import read_raw_dataset

    dataset = read_raw_dataset(site_b)
    assert [c.identifier for c in dataset.cases] == ["phantom_0000", "phantom_0001"]
    record = json.loads((site_b / "dataset.json").read_text())["bench_retrain_loop"]
    case = record["cases"]["phantom_0000"]
    assert case["coil_floor"] == bench.site_b_acquisition(case["seed"])["coil_floor"]
    written = (site_b / "dataset.json").stat().st_mtime_ns
    assert bench.write_site_b_dataset(site_b, 2, seed=3, matrix=64, n_slices=5) == site_b
    assert (site_b / "dataset.json").stat().st_mtime_ns == written  # complete: not generated again


def test_ground_truth_is_exported_through_the_module_as_a_training_set(mrml, site_b: Path, tmp_path: Path) -> None:
    """The AI's labels (here: the ground truth shifted by 2 voxels, and one false voxel) become the
    segmentation, the correction makes it the ground truth, the export holds exactly that."""
    from batseg.training.datasets import read_raw_dataset

    ai = tmp_path / "ai"
    ai.mkdir()
    cases = ["phantom_0000", "phantom_0001"]
    for case in cases:
        truth = sitk.ReadImage(str(site_b / "labelsTr" / f"{case}.nii.gz"))
        labels = np.roll(sitk.GetArrayFromImage(truth), 2, axis=1)
        labels[0, 0, 0] = 4
        guess = sitk.GetImageFromArray(labels)
        guess.CopyInformation(truth)
        sitk.WriteImage(guess, str(ai / f"{case}.nii.gz"))
    export_dir = tmp_path / "export"
    exported = bench.export_ground_truth(cases, site_b / "imagesTr", ai, site_b / "labelsTr", export_dir, MANIFEST,
                                         mrml)
    assert [e["case_id"] for e in exported] == ["batseg_0001", "batseg_0002"]
    assert all(e["editing"]["voxels_removed"]["hemangioblastoma"] >= 1 for e in exported)
    dataset = read_raw_dataset(export_dir)  # what `batseg train --finetune-from M --data` reads first
    assert len(dataset.cases) == 2
    for entry in exported:
        provenance = json.loads((export_dir / "provenanceTr" / f"{entry['case_id']}.json").read_text())
        assert provenance["model"] == MANIFEST and provenance["reviewer"] == bench.REVIEWER
        exported_label = sitk.ReadImage(str(export_dir / "labelsTr" / f"{entry['case_id']}.nii.gz"))
        truth = sitk.ReadImage(str(site_b / "labelsTr" / f"{entry['case']}.nii.gz"))
        # Slicer may store another voxel order: compare in one orientation.
        assert np.array_equal(sitk.GetArrayFromImage(sitk.DICOMOrient(exported_label, "PIR")),
                              sitk.GetArrayFromImage(sitk.DICOMOrient(truth, "PIR")))
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0  # each case leaves the scene


def _entry(round_number: int, shifted: float | None, original: float) -> dict:
    figures = {"cases": 4, "detection_tpr": 0.5, "type_accuracy": 1.0}
    return {"round": round_number, "model": f"m {round_number}", "seconds": 60.0,
            "scores": {"shifted": {**figures, "mean_dice": shifted}, "original": {**figures, "mean_dice": original}}}


def test_targets_need_a_gain_each_round_and_at_most_two_points_lost() -> None:
    met = bench.targets([_entry(0, 0.10, 0.50), _entry(1, 0.30, 0.49), _entry(2, 0.40, 0.481)])
    assert [t["met"] for t in met] == [True, True, True]
    stalled = bench.targets([_entry(0, 0.10, 0.50), _entry(1, 0.30, 0.49), _entry(2, 0.30, 0.47)])
    assert [t["met"] for t in stalled] == [True, False, False]
    assert stalled[2]["figures"] == "mean Dice 50.0 % -> 47.0 %"
    unmeasured = bench.targets([_entry(0, None, 0.50), _entry(1, 0.30, 0.50)])
    assert [t["met"] for t in unmeasured] == [False, True]


def test_the_table_prints_the_run_s_figures() -> None:
    rounds = [_entry(0, 0.10, 0.50), _entry(1, 0.30, 0.49)]
    rounds[1].update(finetune={"seconds": 120.0, "iterations": 80, "new_cases": 2, "replay_cases": 5,
                               "earlier_round_cases": 0, "new_case_repeats": 2},
                     new_cases=["a", "b"], ai_on_new_cases={"mean_dice": 0.125, "detection_tpr": 0.5},
                     ai_vs_corrected_dice=0.2)
    text = bench.markdown_table({"rounds": rounds, "targets": bench.targets(rounds), "total_seconds": 600.0,
                                 "data_seconds": 30.0})
    assert "| 1 | m 1 | 2.0 min | 80 | 1.0 min | 30.0 % | 50.0 % | 100.0 % | 49.0 % |" in text
    assert "| 1 | 2 (2) | 5, 0 | 2x | 12.5 %, 50.0 % | 20.0 % |" in text
    assert "mean Dice 10.0 % -> 30.0 %, **met**" in text and "Total wall time 10.0 min" in text
