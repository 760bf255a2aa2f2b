"""`batseg tune-postprocess`: the tuned copy's own identity (its reports are told apart from the
parent's) and the warnings about validation data that cannot support the choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from batseg.cli import main
from batseg.model_file import read_manifest
from batseg.postprocess_tuning import MIN_CASES_PER_TYPE, Tuning, tuned_identity, validation_warnings
from inference_helpers import cache_dir, light_model, sagittal_image


def _dataset(folder: Path, cases: dict[str, np.ndarray]) -> Path:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for name, labels in cases.items():
        image = sitk.GetImageFromArray(rng.normal(100, 10, labels.shape).astype(np.float32))
        sitk.WriteImage(image, str(folder / "imagesTr" / f"{name}_0000.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(labels.astype(np.uint8)), str(folder / "labelsTr" / f"{name}.nii.gz"))
    return folder


def _case(value: int) -> np.ndarray:
    labels = np.zeros((12, 24, 24), dtype=np.uint8)
    labels[2:7, 3:8, 3:8] = value
    return labels


def test_warnings_without_a_healthy_case_or_with_few_cases_of_a_type() -> None:
    few = Tuning(cases=2, types_per_case=[["meningioma"], ["ependymoma", "astrocytoma"]])
    warnings = validation_warnings(few)
    assert warnings[0].startswith("none of the 2 validation cases is free of tumour")
    assert [w.split(" validation")[0] for w in warnings[1:]] == ["only 1", "only 1", "only 1", "only 0"]
    assert "hemangioblastoma (fewer than 5)" in warnings[-1]
    enough = Tuning(cases=21, types_per_case=[[]] + [[key] for key in
                    ("meningioma", "ependymoma", "astrocytoma", "hemangioblastoma") for _ in range(MIN_CASES_PER_TYPE)])
    assert validation_warnings(enough) == []


def test_the_tuned_copy_has_its_own_version_and_names_its_parent() -> None:
    parent = {"name": "m", "version": "0.6.0", "weights_sha256": "ab" * 32}
    entry = {"postprocessing": {"min_volume_mm3": 20.0, "one_type_per_lesion": False}}
    identity = tuned_identity(parent, entry)
    assert identity["version"].startswith("0.6.0+pp.") and len(identity["version"]) == len("0.6.0+pp.") + 8
    assert identity["derived_from"]["version"] == "0.6.0" and identity["derived_from"]["weights_sha256"] == "ab" * 32
    assert tuned_identity(parent, entry) == identity  # the same choice, the same version
    other = tuned_identity(parent, {"postprocessing": {"min_volume_mm3": 50.0, "one_type_per_lesion": False}})
    assert other["version"] != identity["version"]
    again = tuned_identity({**parent, "version": identity["version"]}, entry)  # tuning a tuned copy
    assert again["version"].count("+") == 1 and again["version"].startswith("0.6.0+pp.")
    assert tuned_identity(parent, entry, "0.6.1")["version"] == "0.6.1"


def test_command_gives_the_copy_an_identity_reports_show_and_warns(tmp_path: Path, capfd, monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))
    data = _dataset(tmp_path / "Dataset900_Val", {"a": _case(2), "b": _case(1)})
    tuned = tmp_path / "tuned.batseg"
    assert main(["tune-postprocess", "--model", str(light_model()), "--data", str(data), "--output", str(tuned),
                 "--candidates", "0", "20", "--device", "cpu", "--progress", "quiet"]) == 0
    err = capfd.readouterr().err
    assert "batseg: warning: none of the 2 validation cases is free of tumour" in err
    assert "batseg: warning: only 0 validation case(s) hold a hemangioblastoma" in err
    parent, child = read_manifest(light_model()), read_manifest(tuned)
    assert child["weights_sha256"] == parent["weights_sha256"] and child["name"] == parent["name"]
    assert child["version"] != parent["version"] and child["version"].startswith(f"{parent['version']}+pp.")
    assert child["derived_from"]["version"] == parent["version"]
    assert any("free of tumour" in w for w in child["postprocessing"]["warnings"])
    # The reports of the two models differ by version and name the parent.
    source = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sagittal_image((8, 40, 40)), str(source))
    for name, model in (("parent", light_model()), ("child", tuned)):
        assert main(["predict", "-i", str(source), "-o", str(tmp_path / name), "--model", str(model),
                     "--device", "cpu", "--progress", "quiet"]) == 0
    reports = {name: json.loads((tmp_path / name / "scan.report.json").read_text()) for name in ("parent", "child")}
    assert reports["parent"]["model"]["version"] != reports["child"]["model"]["version"]
    assert "derived_from" not in reports["parent"]["model"]
    assert reports["child"]["model"]["derived_from"]["version"] == parent["version"]
    assert reports["child"]["settings"]["min_volume_from"] == "model"
    # --continue over the parent's outputs with the tuned copy: another model, refused.
    capfd.readouterr()
    status = main(["predict", "-i", str(source), "-o", str(tmp_path / "parent"), "--model", str(tuned), "--continue",
                   "--device", "cpu", "--progress", "quiet"])
    assert status == 2 and "another model" in capfd.readouterr().err
    status = main(["tune-postprocess", "--model", str(light_model()), "--data", str(data), "--output",
                   str(tmp_path / "x.batseg"), "--version", " ", "--progress", "quiet"])
    assert status == 2 and "--version must not be empty" in capfd.readouterr().err
