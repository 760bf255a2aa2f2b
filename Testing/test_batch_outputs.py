"""`batseg predict` on batches, as a clinical researcher runs it: the cohort table, QC pictures,
--continue, --recursive (BIDS trees), label maps and masks skipped, the case counter, the
research-use line once at the start, and cord masks in the report."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.batch import MAX_LABEL_VALUES, find_batch_cases, label_map_reason
from batseg.cli import main
from batseg.cohort import COLUMNS
from batseg.labels import TUMOUR_CLASSES
from batseg.model_file import read_manifest
from inference_helpers import cache_dir, light_model, make_image, sagittal_image

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def shared_cache(monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))


def predict(*args) -> int:
    return main(["predict", "--model", str(light_model()), "--device", "cpu", *map(str, args)])


def scan(path: Path, seed: int = 0, shape=(8, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sagittal_image(shape, seed=seed), str(path))
    return path


def mask(path: Path, like: Path, box=(slice(2, 6), slice(10, 30), slice(15, 25))) -> Path:
    """A 0/1 uint8 mask on the grid of the image `like` (a cord mask, or a label map to skip)."""
    reference = sitk.ReadImage(str(like))
    array = np.zeros(reference.GetSize()[::-1], np.uint8)
    array[box] = 1
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def one_line_error(status: int, err: str, *words: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("batseg: warning:")]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("batseg: error:") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ cohort table


def test_cohort_table_has_a_row_per_case_with_its_model_settings_and_outcome(tmp_path: Path, capfd) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    scan(folder / "a.nii.gz", 1)
    scan(folder / "b.nii.gz", 2)
    sitk.WriteImage(make_image(np.full((8, 40, 40), 5, np.int16)), str(folder / "c.mha"))  # constant: fails
    mask(folder / "a_seg.nii.gz", folder / "a.nii.gz")  # a mask by its name: skipped
    status = predict("-i", folder, "-o", out, "--cohort", "--min-volume", "0", "--progress", "quiet")
    assert status == 2  # c failed
    capfd.readouterr()
    rows = read_csv(out / "cohort.csv")
    document = json.loads((out / "cohort.json").read_text())
    assert [(r["case"], r["status"]) for r in rows] == [
        ("a", "segmented"), ("b", "segmented"), ("c", "failed"), ("a_seg.nii.gz", "skipped")]
    assert list(rows[0]) == list(COLUMNS) == document["columns"]
    manifest = read_manifest(light_model())
    for row, case in zip(rows[:2], document["cases"][:2]):
        report = json.loads((out / f"{row['case']}.report.json").read_text())
        assert (row["model_name"], row["model_version"], row["model_weights_sha256"]) == (
            manifest["name"], str(manifest["version"]), manifest["weights_sha256"])
        assert (row["min_volume_mm3"], row["one_type_per_lesion"], row["postprocess"], row["tta"]) == ("0.0", "no", "yes", "no")
        assert row["batseg_version"] and row["created"].endswith("+00:00")
        assert int(row["lesion_count"]) == report["lesion_count"] == case["lesion_count"]
        assert float(row["total_volume_cm3"]) == pytest.approx(report["total_volume_cm3"], abs=1e-6)
        for tumour in TUMOUR_CLASSES:
            assert float(row[f"volume_{tumour.key}_cm3"]) == pytest.approx(report["type_volumes_cm3"][tumour.key], abs=1e-6)
        assert row["overall_type"] == report["overall_type_key"] and float(row["seconds"]) > 0
        assert row["source"] == str(folder / f"{row['case']}.nii.gz") and row["error"] == ""
        assert case["warnings"] == report["warnings"]
    assert "constant" in rows[2]["error"] and rows[2]["model_name"] == ""
    assert "label map or mask" in rows[3]["error"]
    assert document["counts"] == {"cases": 4, "segmented": 2, "resumed": 0, "failed": 1, "skipped": 1}
    assert document["format"] == "batseg-cohort" and "not for clinical use" in document["disclaimer"]
    assert document["started"] <= document["finished"] and document["model"]["name"] == manifest["name"]
    assert (document["input"], document["output"]) == (str(folder), str(out))
    # The table is the run's output: it is never silently replaced.
    status = predict("-i", folder / "a.nii.gz", "-o", out, "--cohort", "--overwrite", "--progress", "quiet")
    assert status == 0 and [r["case"] for r in read_csv(out / "cohort.csv")] == ["a"]
    status = predict("-i", folder / "b.nii.gz", "-o", out, "--cohort", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "cohort.csv", "already exists", "--continue")


def test_the_cohort_table_is_checked_before_any_work(tmp_path: Path, capfd) -> None:
    source, out = scan(tmp_path / "a.nii.gz"), tmp_path / "out"
    (out / "cohort.json").mkdir(parents=True)
    status = predict("-i", source, "-o", out, "--cohort", "--overwrite", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "cohort.json", "is a folder")
    assert sorted(p.name for p in out.iterdir()) == ["cohort.json"]  # nothing segmented


def test_a_table_the_user_edited_is_not_replaced_by_continue(tmp_path: Path, capfd) -> None:
    source, out = scan(tmp_path / "a.nii.gz"), tmp_path / "out"
    assert predict("-i", source, "-o", out, "--cohort", "--progress", "quiet") == 0
    assert predict("-i", source, "-o", out, "--cohort", "--continue", "--progress", "quiet") == 0  # batseg's own: replaced
    assert read_csv(out / "cohort.csv")[0]["status"] == "resumed"
    (out / "cohort.csv").write_text("case,my notes\na,looks fine\n")
    capfd.readouterr()
    status = predict("-i", source, "-o", out, "--cohort", "--continue", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "cohort.csv", "already exists")
    assert (out / "cohort.csv").read_text() == "case,my notes\na,looks fine\n"


# ------------------------------------------------------------------------------ --continue


def test_continue_segments_only_the_cases_an_interrupted_run_left(tmp_path: Path, capfd) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        scan(folder / f"{name}.nii.gz", seed)
    args = ("-i", folder, "-o", out, "--qc", "--cohort", "--progress", "quiet")
    assert predict(*args) == 0
    # An interrupted run: c never written, no cohort table yet (it is written last).
    for path in out.glob("c.*"):
        path.unlink()
    (out / "cohort.csv").unlink()
    (out / "cohort.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    status = predict(*args)  # without --continue: refused, as before
    one_line_error(status, capfd.readouterr().err, "already exists")
    assert predict(*args, "--continue") == 0
    capfd.readouterr()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in kept} == kept  # a, b untouched
    assert sorted(p.name for p in out.glob("c.*")) == ["c.nii.gz", "c.qc.png", "c.report.csv", "c.report.json"]
    rows = read_csv(out / "cohort.csv")
    assert [(r["case"], r["status"]) for r in rows] == [("a", "resumed"), ("b", "resumed"), ("c", "segmented")]
    assert rows[0]["lesion_count"] != "" and float(rows[0]["seconds"]) > 0  # read back from a's report


def test_continue_resumes_a_report_from_before_a_postprocessing_step_existed(tmp_path: Path, capfd) -> None:
    """A report without min_tumour_probability / min_enhancement was made with those steps off: a run
    that leaves them off resumes it; one that turns a step on is told the settings differ."""
    source, out = scan(tmp_path / "a.nii.gz"), tmp_path / "out"
    assert predict("-i", source, "-o", out, "--min-volume", "0", "--progress", "quiet") == 0
    report = out / "a.report.json"
    old = json.loads(report.read_text())
    for key in ("min_tumour_probability", "min_tumour_probability_from", "min_enhancement", "min_enhancement_from"):
        del old["settings"][key]
    report.write_text(json.dumps(old))
    before = report.stat().st_mtime_ns
    assert predict("-i", source, "-o", out, "--min-volume", "0", "--continue", "--progress", "quiet") == 0
    assert report.stat().st_mtime_ns == before  # resumed, not segmented again
    capfd.readouterr()
    status = predict("-i", source, "-o", out, "--min-volume", "0", "--min-enhancement", "1.1", "--continue",
                     "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "other settings", "min_enhancement 0.0", "--overwrite")


def test_continue_refuses_outputs_made_with_other_settings_unless_overwrite(tmp_path: Path, capfd) -> None:
    source, out = scan(tmp_path / "a.nii.gz"), tmp_path / "out"
    assert predict("-i", source, "-o", out, "--min-volume", "0", "--progress", "quiet") == 0
    capfd.readouterr()
    status = predict("-i", source, "-o", out, "--min-volume", "50", "--continue", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "other settings", "min_volume_mm3 0.0", "--overwrite")
    report = out / "a.report.json"
    before = report.stat().st_mtime_ns
    assert predict("-i", source, "-o", out, "--min-volume", "50", "--continue", "--overwrite", "--progress", "quiet") == 0
    assert report.stat().st_mtime_ns != before
    assert json.loads(report.read_text())["settings"]["min_volume_mm3"] == 50.0
    # A case whose outputs lack one this run asks for is not complete: refused without --overwrite.
    capfd.readouterr()
    status = predict("-i", source, "-o", out, "--min-volume", "50", "--continue", "--qc", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "already exists")


# ------------------------------------------------------------------------------ QC picture


def test_qc_picture_shows_each_lesion_on_its_sagittal_slice_in_the_tumour_colours(tmp_path: Path) -> None:
    from batseg.qc_picture import lesion_slices, qc_figure
    from batseg.report import lesion_report

    # An axial LPS volume: the picture must still be sagittal, superior up and anterior left.
    array = np.random.default_rng(0).normal(500, 50, (20, 30, 24)).astype(np.float32)
    image = make_image(array, spacing=(1.0, 1.0, 2.0), direction=np.eye(3), origin=(0.0, 0.0, 0.0))
    labels_array = np.zeros(array.shape, np.uint8)
    labels_array[14:18, 5:9, 10:13] = 1  # superior (high LPS z), anterior (low y): meningioma
    labels_array[2:5, 20:25, 3:5] = 4  # inferior, posterior, right: hemangioblastoma
    labels_array[3, 20, 3] = 2  # one ependymoma voxel inside it: a mixed lesion
    labels = make_image(labels_array, spacing=(1.0, 1.0, 2.0), direction=np.eye(3), origin=(0.0, 0.0, 0.0))
    report = lesion_report(labels, case_id="sub-07")
    model = {"name": "some-model", "version": "9.9.9"}
    figure = qc_figure(image, labels, report, model, "Research software; not for clinical use.")
    texts = " ".join(t.get_text() for t in figure.texts) + " " + figure._suptitle.get_text()
    assert "sub-07" in texts and "some-model 9.9.9" in texts and "not for clinical use" in texts
    panels = [axes for axes in figure.axes if axes.images]
    assert len(panels) == report["lesion_count"] == 2
    titles = [axes.get_title() for axes in panels]
    assert titles[0].startswith("lesion 1: Spinal meningioma") and titles[1].startswith("lesion 2: Hemangioblastoma (mixed types)")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [f"{t.value} {t.name}" for t in TUMOUR_CLASSES]
    for axes, colour, rows_expected in ((panels[0], TUMOUR_CLASSES[0].color, "top"), (panels[1], TUMOUR_CLASSES[3].color, "bottom")):
        overlay = np.asarray(axes.images[1].get_array())
        painted = overlay[..., 3] > 0
        assert painted.any()
        np.testing.assert_allclose(overlay[painted][:, :3].max(axis=0), colour, atol=1e-6)  # the tumour's own colour
        rows = np.nonzero(painted)[0]
        half = overlay.shape[0] / 2
        assert (rows.mean() < half) if rows_expected == "top" else (rows.mean() > half)  # superior up
    columns = np.nonzero(np.asarray(panels[0].images[1].get_array())[..., 3] > 0)[1]
    assert columns.mean() < np.asarray(panels[0].images[1].get_array()).shape[1] / 2  # anterior left
    from batseg.qc_picture import display_arrays
    _, oriented, _ = display_arrays(image, labels)
    chosen = lesion_slices(oriented, report)
    assert [lesion["id"] for lesion, _, _ in chosen] == [1, 2]


def test_qc_option_writes_a_png_per_case_with_the_outputs(tmp_path: Path, capfd) -> None:
    source, out = scan(tmp_path / "case.nii.gz"), tmp_path / "out"
    assert predict("-i", source, "-o", out, "--qc", "--min-volume", "0", "--progress", "json") == 0
    events = [json.loads(line[7:]) for line in capfd.readouterr().out.splitlines() if line.startswith("BATSEG ")]
    result = next(e for e in events if e["event"] == "result")
    assert result["outputs"]["qc"] == str(out / "case.qc.png") and result["timings"]["qc picture"] >= 0
    data = (out / "case.qc.png").read_bytes()
    assert data[:8] == PNG and len(data) > 10_000
    # Without --qc, an earlier run's picture belongs to the case's set: refused, or removed with --overwrite.
    for name in ("case.nii.gz", "case.report.json", "case.report.csv"):
        (out / name).unlink()
    status = predict("-i", source, "-o", out, "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "case.qc.png", "earlier run")
    assert predict("-i", source, "-o", out, "--overwrite", "--progress", "quiet") == 0
    assert not (out / "case.qc.png").exists()


# ------------------------------------------------------------------------------ listing inputs


def test_label_maps_and_masks_are_skipped_with_a_note(tmp_path: Path, capfd) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    scan(folder / "t2.nii.gz")
    for name in ("t2_seg.nii.gz", "t2_seg-manual.nii.gz", "sub-01_T1w_dseg.nii.gz", "lesion_mask.nrrd", "t2_label.nii.gz"):
        mask(folder / name, folder / "t2.nii.gz")
    mask(folder / "unnamed.nii.gz", folder / "t2.nii.gz")  # a mask by its content only
    assert predict("-i", folder, "-o", out, "--progress", "bar") == 0
    err = capfd.readouterr().err
    assert "5 file(s) skipped, not segmented (label maps or masks by their name or kind)" in err
    assert "unnamed: skipped, not segmented: unnamed.nii.gz is an integer image with only 2 distinct values (0, 1)" in err
    assert "1 input(s) skipped as label maps or masks: unnamed" in err
    assert sorted(p.name for p in out.iterdir()) == ["t2.nii.gz", "t2.report.csv", "t2.report.json"]
    # Given by itself, a mask is refused in one line (the user asked for exactly that file).
    status = predict("-i", folder / "unnamed.nii.gz", "-o", tmp_path / "o2", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "unnamed.nii.gz", "label map or mask", "give the MRI scan")
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())
    # A folder of masks only says so.
    only = tmp_path / "only"
    only.mkdir()
    mask(only / "x_seg.nii.gz", folder / "t2.nii.gz")
    status = predict("-i", only, "-o", tmp_path / "o3", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "only label maps or masks")


def test_label_map_reason_counts_values_of_integer_images_only() -> None:
    assert label_map_reason(make_image(np.arange(4 * 8 * 8).reshape(4, 8, 8).astype(np.int16))) is None
    few = np.zeros((4, 8, 8), np.int16)
    few[1, 2:4, 2:4] = 3
    assert "2 distinct values (0, 3)" in label_map_reason(make_image(few))
    levels = (np.arange(4 * 30 * 30) % MAX_LABEL_VALUES).reshape(4, 30, 30).astype(np.uint8)
    assert label_map_reason(make_image(levels)) is not None
    assert label_map_reason(make_image((levels % 2).astype(np.float32))) is None  # floats are scans
    big = np.random.default_rng(0).integers(0, 1000, (20, 200, 200)).astype(np.int16)
    assert label_map_reason(make_image(big)) is None


def test_recursive_search_of_a_bids_tree(tmp_path: Path, capfd) -> None:
    bids, out = tmp_path / "bids", tmp_path / "bids" / "out"
    scan(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz", 1)
    scan(bids / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_T1w.nii.gz", 2)
    scan(bids / "derivatives" / "preproc" / "sub-01_desc-preproc_T1w.nii.gz", 3)  # not searched
    scan(bids / ".hidden" / "x.nii.gz", 4)  # not searched
    scan(bids / "site1" / "scan.nii.gz", 5)
    scan(bids / "site2" / "scan.nii.gz", 6)  # same file name: both named after their folder
    mask(bids / "sub-01" / "anat" / "sub-01_T1w_seg.nii.gz", bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    status = predict("-i", bids, "-o", tmp_path / "o0", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "no image files", "--recursive")
    cases, skipped = find_batch_cases(bids, recursive=True, exclude=(out,))
    assert [c.name for c in cases] == ["site1_scan", "site2_scan", "sub-01_T1w", "sub-02_ses-1_T1w"]
    assert [s.path.name for s in skipped] == ["sub-01_T1w_seg.nii.gz"]
    assert predict("-i", bids, "-o", out, "--recursive", "--progress", "quiet") == 0
    capfd.readouterr()
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "site1_scan.nii.gz", "site2_scan.nii.gz", "sub-01_T1w.nii.gz", "sub-02_ses-1_T1w.nii.gz"]
    # The output folder inside the tree is not searched: a second run finds the same four cases.
    assert predict("-i", bids, "-o", out, "--recursive", "--continue", "--progress", "quiet") == 0


# ------------------------------------------------------------------------------ progress lines


def test_case_counter_with_time_left_and_the_research_use_line_once_at_the_start(tmp_path: Path, capfd) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        scan(folder / f"{name}.nii.gz", seed)
    assert predict("-i", folder, "-o", out, "--progress", "bar") == 0
    captured = capfd.readouterr()
    disclaimer = read_manifest(light_model())["disclaimer"]
    assert captured.out.splitlines()[0] == f"batseg: {disclaimer}" and "not for clinical use" in disclaimer
    assert len(captured.out.strip().splitlines()) == 1 and "clinical use" not in captured.err
    counter = [line for line in captured.err.splitlines() if line.startswith("case ")]
    assert counter[0] == "case 1/3: a"
    assert counter[1].startswith("case 2/3: b (about ") and counter[1].endswith(" s left)")
    assert counter[2].startswith("case 3/3: c (about ")
    # json: a progress event per case for the Slicer panel and other callers; the line first.
    assert predict("-i", folder, "-o", tmp_path / "o2", "--progress", "json") == 0
    events = [json.loads(line[7:]) for line in capfd.readouterr().out.splitlines() if line.startswith("BATSEG ")]
    assert events[0]["event"] == "log" and "not for clinical use" in events[0]["message"]
    cases = [(e["done"], e["total"]) for e in events if e["event"] == "progress" and e["stage"] == "cases"]
    assert cases == [(0, 3), (1, 3), (2, 3)]
    assert sum("not for clinical use" in e.get("message", "") for e in events) == 1
    # One case: no counter.
    assert predict("-i", folder / "a.nii.gz", "-o", tmp_path / "o3", "--progress", "bar") == 0
    assert not any(line.startswith("case ") for line in capfd.readouterr().err.splitlines())


# ------------------------------------------------------------------------------ cord masks


def test_cord_masks_say_whether_each_lesion_lies_inside_the_cord(tmp_path: Path, capfd) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    source = scan(folder / "t2.nii.gz", 3)
    everywhere = (slice(None), slice(None), slice(None))
    mask(folder / "t2_seg.nii.gz", source, box=everywhere)  # the Spinal Cord Toolbox's name, beside the scan
    assert predict("-i", folder, "-o", out, "--cord-masks", folder, "--min-volume", "0", "--progress", "quiet") == 0
    report = json.loads((out / "t2.report.json").read_text())
    assert report["lesion_count"] > 0 and report["cord_mask_file"] == str(folder / "t2_seg.nii.gz")
    assert {lesion["cord_location"] for lesion in report["lesions"]} == {"inside_cord"}
    nowhere = tmp_path / "masks"
    nowhere.mkdir()
    mask(nowhere / "t2.nii.gz", source, box=(slice(0, 0),) * 3)
    assert predict("-i", source, "-o", tmp_path / "o2", "--cord-masks", nowhere / "t2.nii.gz", "--min-volume", "0",
                   "--progress", "quiet") == 0
    lesions = json.loads((tmp_path / "o2" / "t2.report.json").read_text())["lesions"]
    assert {(lesion["cord_location"], lesion["cord_overlap_fraction"]) for lesion in lesions} == {("outside_cord", 0.0)}
    # A folder without this case's mask: unknown, with a warning; a mask off the grid: one line.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert predict("-i", source, "-o", tmp_path / "o3", "--cord-masks", empty, "--progress", "quiet") == 0
    report = json.loads((tmp_path / "o3" / "t2.report.json").read_text())
    assert any("no spinal cord mask" in w for w in report["warnings"])
    capfd.readouterr()
    other = scan(tmp_path / "other" / "t2.nii.gz", 1, shape=(8, 40, 36))
    mask(tmp_path / "other" / "t2_seg.nii.gz", other)
    status = predict("-i", source, "-o", tmp_path / "o4", "--cord-masks", tmp_path / "other" / "t2_seg.nii.gz", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "not on the scan's grid")
    status = predict("-i", source, "-o", tmp_path / "o5", "--cord-masks", tmp_path / "missing", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "--cord-masks", "does not exist")
    status = predict("-i", folder, "-o", tmp_path / "o6", "--cord-masks", folder / "t2_seg.nii.gz", "--progress", "quiet")
    assert status == 0  # the folder holds one scan (t2_seg is skipped): one file is fine
    assert not os.path.exists(tmp_path / "o4") or not any((tmp_path / "o4").iterdir())
