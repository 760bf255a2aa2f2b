"""`batseg sample`: lists the bundled phantoms and copies them, verified, in predict/evaluate layout."""

from __future__ import annotations

import SimpleITK as sitk

from batseg.cli import main
from batseg.phantoms.samples import sample_cases, sample_path


def test_list_names_every_sample(capsys) -> None:
    assert main(["sample", "--list"]) == 0
    out = capsys.readouterr().out
    for case in sample_cases():
        assert case["name"] in out


def test_copy_gives_images_and_labels_with_same_content(tmp_path) -> None:
    assert main(["sample", "-o", str(tmp_path)]) == 0
    for case in sample_cases():
        image = tmp_path / "images" / f"{case['name']}.nii.gz"
        label = tmp_path / "labels" / f"{case['name']}.nii.gz"
        assert image.read_bytes() == sample_path(case["name"], "image").read_bytes()
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
        assert case["tumour_type"] in set(labels.ravel().tolist())


def test_second_copy_refused_without_overwrite(tmp_path, capsys) -> None:
    assert main(["sample", "-o", str(tmp_path)]) == 0
    assert main(["sample", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("batseg: error:")
    assert main(["sample", "-o", str(tmp_path), "--overwrite"]) == 0
