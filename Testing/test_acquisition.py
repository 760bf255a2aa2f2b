"""The contrast check of `batseg.acquisition`: which metadata means "not T1", from DICOM headers,
BIDS sidecars and file names, and that `batseg predict` warns and reports it without stopping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.acquisition import Acquisition, contrast_warning, from_dicom, from_file, weighting
from batseg.cli import main
from dicom_helpers import int16_image, write_dicom_series
from inference_helpers import PIR_DIRECTION, cache_dir, light_model, sagittal_image


@pytest.mark.parametrize(
    "te, tr, ti, description, expected",
    [
        (12.0, 600.0, None, "", "T1-weighted"),  # T1 TSE
        (3.0, 2000.0, 900.0, "", "T1-weighted"),  # MPRAGE: long TR but an inversion
        (96.0, 3000.0, None, "T1 SAG POST GD", "T2-weighted"),  # the times win over a wrong description
        (40.0, 4000.0, 160.0, "", "STIR"),
        (120.0, 9000.0, 2500.0, "", "FLAIR"),
        (15.0, 3000.0, None, "", "proton-density-weighted"),
        (None, None, None, "t2_tse_sag", "T2-weighted"),
        (None, None, None, "SAG T2* MEDIC", "T2*-weighted"),
        (None, None, None, "T2w", "T2-weighted"),  # a BIDS suffix
        (None, None, None, "T1 SAG +C", "T1-weighted"),
        (None, None, None, "sag post", "unknown"),
        (None, None, None, "", "unknown"),
    ],
)
def test_weighting_from_times_first_then_the_description(te, tr, ti, description, expected) -> None:
    assert weighting(Acquisition("test", "MR", te, tr, ti, description)) == expected


def test_warning_only_when_the_metadata_says_another_contrast() -> None:
    assert contrast_warning(Acquisition("DICOM", "MR", 12.0, 600.0)) == ""
    assert contrast_warning(Acquisition()) == ""  # no metadata: no verdict, no warning
    t2 = contrast_warning(Acquisition("DICOM", "MR", 96.0, 3000.0))
    assert "T2-weighted" in t2 and "EchoTime 96 ms" in t2 and "T1 Gd" in t2 and "\n" not in t2
    assert "modality CT" in contrast_warning(Acquisition("DICOM", "CT", 12.0, 600.0))


def test_dicom_header_facts(tmp_path: Path) -> None:
    image = int16_image(np.arange(4 * 6 * 5).reshape(4, 6, 5), (0.8, 0.8, 3.5), PIR_DIRECTION)
    folder = write_dicom_series(
        image, tmp_path / "t2", description="T2 TSE SAG",
        extra_tags={"0018|0081": "96", "0018|0080": "3000", "0018|0010": ""},
    )
    facts = from_dicom(str(sorted(folder.iterdir())[0]))
    assert facts.source == "DICOM" and facts.modality == "MR" and facts.description == "T2 TSE SAG"
    assert facts.echo_time_ms == pytest.approx(96.0) and facts.repetition_time_ms == pytest.approx(3000.0)
    assert facts.inversion_time_ms is None and weighting(facts) == "T2-weighted"


def test_bids_sidecar_seconds_milliseconds_and_file_name(tmp_path: Path) -> None:
    image = tmp_path / "sub-01_acq-sag_T1w.nii.gz"
    (tmp_path / "sub-01_acq-sag_T1w.json").write_text(json.dumps({"EchoTime": 0.096, "RepetitionTime": 3.0}))
    facts = from_file(image)
    assert facts.source == "BIDS sidecar" and facts.echo_time_ms == pytest.approx(96.0)
    assert weighting(facts) == "T2-weighted"  # the times win over the T1w in the name
    (tmp_path / "ms.json").write_text(json.dumps({"EchoTime": 12, "RepetitionTime": 600}))  # written in ms
    assert from_file(tmp_path / "ms.nii").echo_time_ms == pytest.approx(12.0)
    assert weighting(from_file(tmp_path / "sub-02_T2w.nii.gz")) == "T2-weighted"  # no sidecar: the BIDS suffix
    assert from_file(tmp_path / "case_0000.nii.gz") == Acquisition()  # nothing known
    (tmp_path / "broken.json").write_text("{not json")
    assert from_file(tmp_path / "broken.nrrd") == Acquisition()


def test_predict_warns_and_reports_a_t2_scan_but_still_segments_it(tmp_path: Path, capfd, monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))
    folder = tmp_path / "in"
    folder.mkdir()
    for name, echo_s in (("t1", 0.012), ("t2", 0.096)):
        sitk.WriteImage(sagittal_image((8, 120, 40), seed=3), str(folder / f"{name}.nii.gz"))
        (folder / f"{name}.json").write_text(json.dumps({"EchoTime": echo_s, "RepetitionTime": 3.0 if echo_s > 0.05 else 0.6}))
    out = tmp_path / "out"
    # The random test images hold no spine: without the locator, no "no cord found" warning.
    status = main(["predict", "--model", str(light_model()), "-i", str(folder), "-o", str(out), "--progress", "quiet",
                   "--no-cord-locator"])
    err = capfd.readouterr().err
    assert status == 0, err
    warned = [line for line in err.splitlines() if "looks T2-weighted" in line]
    assert len(warned) == 1 and warned[0].startswith("batseg: warning: t2: ")
    t2 = json.loads((out / "t2.report.json").read_text())
    assert t2["acquisition"]["weighting"] == "T2-weighted" and t2["acquisition"]["echo_time_ms"] == pytest.approx(96.0)
    assert any("looks T2-weighted" in w for w in t2["warnings"])
    t1 = json.loads((out / "t1.report.json").read_text())
    assert t1["acquisition"]["weighting"] == "T1-weighted" and t1["warnings"] == []


def test_predict_reads_the_contrast_of_a_dicom_series(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))
    image = int16_image(sitk.GetArrayFromImage(sagittal_image((8, 40, 40), seed=4)), (0.9, 0.9, 3.3), PIR_DIRECTION)
    write_dicom_series(image, tmp_path / "series", description="SAG STIR", extra_tags={"0018|0081": "40",
                       "0018|0080": "4000", "0018|0082": "160"})
    out = tmp_path / "out"
    assert main(["predict", "--model", str(light_model()), "-i", str(tmp_path / "series"), "-o", str(out),
                 "--progress", "quiet"]) == 0
    report = json.loads((out / "series.report.json").read_text())
    assert report["acquisition"]["source"] == "DICOM" and report["acquisition"]["weighting"] == "STIR"
    assert any("looks STIR" in w and "InversionTime 160 ms" in w for w in report["warnings"])
