"""`batseg evaluate` end to end on temporary folders, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main

SPACING = (0.47, 0.47, 3.3)  # SimpleITK (i, j, k) order
DIRECTION = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SHAPE = (8, 32, 32)  # array (k, j, i)


def write_label(path: Path, array: np.ndarray, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> None:
    """Write a label map with the test geometry."""
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetDirection(DIRECTION)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def tumour(value: int) -> np.ndarray:
    """A box tumour of one class (3 x 10 x 10 voxels)."""
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[2:5, 8:18, 8:18] = value
    return array


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Cases: perfect meningioma, ependymoma predicted as astrocytoma, healthy with a false positive,
    one ground truth without prediction, and a probability map that matches no case."""
    gt, pred = tmp_path / "labelsTs", tmp_path / "predictions"
    write_label(gt / "case_001.nii.gz", tumour(1))
    write_label(pred / "case_001.nii.gz", tumour(1))
    write_label(gt / "case_002.nii.gz", tumour(2))
    write_label(pred / "case_002.nii.gz", tumour(3))
    write_label(gt / "case_003.nii.gz", np.zeros(SHAPE))
    false_positive = np.zeros(SHAPE)
    false_positive[4, 20:25, 20:25] = 4
    write_label(pred / "case_003.nii.gz", false_positive)
    write_label(gt / "case_004.nii.gz", tumour(1))
    (pred / "case_001_probabilities.npz").write_bytes(b"not an image")
    return pred, gt


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run `batseg` in-process; (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_evaluate_writes_json_png_and_prints_the_table(folders, tmp_path, capsys) -> None:
    pred, gt = folders
    out_json, out_png = tmp_path / "results" / "results.json", tmp_path / "results" / "chart.png"
    status, out, _ = run_cli(
        capsys, "evaluate", "--pred", pred, "--gt", gt, "-o", out_json, "--png", out_png, "--progress", "quiet"
    )
    assert status == 0
    results = json.loads(out_json.read_text())
    assert sorted(results["cases"]) == ["case_001", "case_002", "case_003"]
    assert results["unmatched_ground_truth"] == ["case_004"]
    per_class = results["aggregate"]["per_class"]
    assert (per_class["meningioma"]["dice_mean"], per_class["meningioma"]["hd95_mean"]) == (1.0, 0.0)
    assert (per_class["ependymoma"]["dice_mean"], per_class["ependymoma"]["hd95_mean"]) == (0.0, 450.0)
    assert results["aggregate"]["detection"]["type_confusion"][1][2] == 1
    assert results["aggregate"]["healthy_cases_with_prediction"] == 1
    assert "not for clinical use" in results["disclaimer"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 10_000
    lines = out.splitlines()
    assert lines[0].split() == ["class", "Dice", "%", "HD95", "mm", "cases"]
    assert lines[1].split() == ["Spinal", "meningioma", "100.0", "0.0", "1"]
    assert lines[2].split() == ["Ependymoma", "0.0", "450.0", "1"]
    assert any("Lesion type accuracy: 1/2" in line for line in lines)
    assert sorted(p.name for p in out_json.parent.iterdir()) == ["chart.png", "results.json"]


def test_evaluate_single_files_and_json_progress(folders, capsys) -> None:
    pred, gt = folders
    status, out, _ = run_cli(
        capsys, "evaluate", "--pred", pred / "case_002.nii.gz", "--gt", gt / "case_002.nii.gz", "--progress", "json"
    )
    assert status == 0
    events = [json.loads(line[len("BATSEG "):]) for line in out.splitlines() if line.startswith("BATSEG ")]
    result = [e for e in events if e["event"] == "result"]
    assert result and result[0]["n_cases"] == 1 and result[0]["mean_dice"] == 0.0
    assert any(e["event"] == "progress" and e["done"] == 1 for e in events)


def assert_one_line_error(status: int, err: str, expected: str) -> None:
    """Exit status 2 and exactly one `batseg: error:` line naming the problem."""
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("batseg: error:") and expected in lines[0]
    assert "Traceback" not in err


def test_missing_folder(folders, tmp_path, capsys) -> None:
    pred, _ = folders
    status, _, err = run_cli(
        capsys, "evaluate", "--pred", pred, "--gt", tmp_path / "nowhere", "--progress", "quiet"
    )
    assert_one_line_error(status, err, "does not exist")


def test_no_matching_cases(folders, tmp_path, capsys) -> None:
    pred, _ = folders
    other = tmp_path / "other"
    write_label(other / "sub-99.nii.gz", tumour(1))
    status, _, err = run_cli(capsys, "evaluate", "--pred", pred, "--gt", other)
    assert_one_line_error(status, err, "no case name is common")


@pytest.mark.parametrize("damage", ["garbage", "truncated_gz", "truncated_nii"])
def test_unreadable_file(folders, capsys, damage) -> None:
    pred, gt = folders
    target = pred / "case_001.nii.gz"
    if damage == "garbage":
        target.write_bytes(b"this is not a NIfTI file")
    elif damage == "truncated_gz":
        # ITK alone would read this as a partly zero label map; it must be refused.
        target.write_bytes(target.read_bytes()[:-40])
    else:
        target.unlink()
        target = pred / "case_001.nii"
        write_label(target, tumour(1))
        target.write_bytes(target.read_bytes()[:-1000])
    status, _, err = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--progress", "quiet")
    assert_one_line_error(status, err, f"label file {target} is truncated or corrupt")


def test_sitk_unreadable_nrrd(folders, capsys) -> None:
    pred, gt = folders
    (pred / "case_001.nii.gz").unlink()
    (pred / "case_001.nrrd").write_text("NRRD0004\ntype: uchar\n")
    status, _, err = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--progress", "quiet")
    assert_one_line_error(status, err, "cannot read label file")


@pytest.mark.parametrize(
    "change, word",
    [({"spacing": (0.5, 0.47, 3.3)}, "spacing"), ({"origin": (0.0, 2.0, 0.0)}, "origin")],
)
def test_geometry_mismatch(folders, capsys, change, word) -> None:
    pred, gt = folders
    write_label(pred / "case_001.nii.gz", tumour(1), **change)
    status, _, err = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--progress", "quiet")
    assert_one_line_error(status, err, f"case case_001: prediction and ground truth differ in {word}")


def test_labels_out_of_range(folders, capsys) -> None:
    pred, gt = folders
    write_label(pred / "case_001.nii.gz", tumour(9))
    status, _, err = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--progress", "quiet")
    assert_one_line_error(status, err, "only 0 (background) to 4")


def test_existing_output_needs_overwrite(folders, tmp_path, capsys) -> None:
    pred, gt = folders
    existing = tmp_path / "results.json"
    existing.write_text("keep me")
    command = ("evaluate", "--pred", pred, "--gt", gt, "-o", existing, "--progress", "quiet")
    status, out, err = run_cli(capsys, *command)
    assert_one_line_error(status, err, "--overwrite")
    assert existing.read_text() == "keep me" and out == ""
    status, _, _ = run_cli(capsys, *command, "--overwrite")
    assert status == 0 and json.loads(existing.read_text())["aggregate"]["n_cases"] == 3


def test_console_error_is_one_line_without_traceback(folders) -> None:
    pred, gt = folders
    write_label(pred / "case_002.nii.gz", np.zeros((8, 32, 30)))
    process = subprocess.run(
        [sys.executable, "-m", "batseg", "evaluate", "--pred", str(pred), "--gt", str(gt), "--progress", "quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "batseg: error: case case_002: prediction and ground truth differ in size ((30, 32, 8) vs (32, 32, 8)): "
        "resample the prediction onto the ground-truth grid"
    ]


def test_the_model_is_read_from_the_reports_beside_the_predictions(folders, tmp_path, capsys) -> None:
    pred, gt = folders
    status, out, _ = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "-o", tmp_path / "r0.json", "--progress", "quiet")
    assert status == 0 and "model unknown" in out
    assert json.loads((tmp_path / "r0.json").read_text())["model"]["source"] == "unknown"
    model = {"name": "batseg-light-phantoms", "version": "0.6.0", "weights_sha256": "ab" * 32}
    for case in ("case_001", "case_002", "case_003"):
        (pred / f"{case}.report.json").write_text(json.dumps({"case_id": case, "model": model}))
    status, out, _ = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "-o", tmp_path / "r1.json", "--progress", "quiet")
    assert "Predictions of model batseg-light-phantoms 0.6.0" in out
    assert json.loads((tmp_path / "r1.json").read_text())["model"] == {**model, "source": "reports"}
    (pred / "case_003.report.json").write_text(json.dumps({"case_id": "case_003", "model": {**model, "version": "0.7.0"}}))
    status, out, _ = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--progress", "quiet")
    assert "several models (batseg-light-phantoms 0.6.0, batseg-light-phantoms 0.7.0)" in out
    status, out, _ = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--model-name", "nnU-Net baseline",
                             "-o", tmp_path / "r2.json", "--progress", "quiet")
    assert "Predictions of model nnU-Net baseline" in out
    assert json.loads((tmp_path / "r2.json").read_text())["model"]["source"] == "--model-name"


def test_the_chart_shows_detection_rates_the_per_case_spread_and_the_model(folders, tmp_path, capsys) -> None:
    from batseg.evaluation import chart_figure, evaluate_paths

    pred, gt = folders
    results = evaluate_paths(pred, gt, model_name="my-model 1.2")
    figure = chart_figure(results)
    titles = [axes.get_title() for axes in figure.axes]
    assert "Dice per class (%): mean, and each case" in titles and "Lesion type confusion" in titles
    assert any(title.startswith("Detection (overlap >= 6 mm3)") for title in titles)
    assert any(title.startswith("Whole-tumour Dice per case (2 with tumour") and "1 with a false lesion" in title
               for title in titles)
    detection = next(axes for axes in figure.axes if axes.get_title().startswith("Detection"))
    labels = [tick.get_text() for tick in detection.get_yticklabels()]
    assert labels[:2] == ["true lesions found (TPDR)", "reported lesions false (FPDR)"]
    texts = [text.get_text() for text in detection.texts]
    # 2 true lesions, both found; 3 predicted, one false (the healthy case's); types right 1 of 2.
    assert texts[0] == "100% (2/2)" and texts[1] == "33% (1/3)" and texts[4] == "50% (1/2)"
    spread = next(axes for axes in figure.axes if axes.get_title().startswith("Whole-tumour"))
    # Whole tumour: the ependymoma painted as astrocytoma is still found whole.
    assert [round(bar.get_height(), 1) for bar in spread.patches] == [100.0, 100.0]
    assert [tick.get_text() for tick in spread.get_xticklabels()] == ["case_001", "case_002"]
    dice = next(axes for axes in figure.axes if axes.get_title().startswith("Dice per class"))
    assert len(dice.collections) == 2  # one dot per case, for the two classes present
    assert figure._suptitle.get_text().startswith("model my-model 1.2: 3 case(s)")
    status, _, _ = run_cli(capsys, "evaluate", "--pred", pred, "--gt", gt, "--png", tmp_path / "c.png", "--progress", "quiet")
    assert status == 0 and (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
