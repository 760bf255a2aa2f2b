"""Bad inputs: each one is refused with one line (InputImageError), and through `batseg predict`
with exit status 2, one line on stderr, no traceback and no output file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main
from batseg.errors import InputImageError
from batseg.io import find_cases, read_image, read_image_info
from dicom_helpers import int16_image, write_dicom_series
from inference_helpers import PIR_DIRECTION, assert_predict_refuses, cache_dir, light_model, predictor, run_cli, smooth_volume


def _nifti(path: Path, array: np.ndarray, spacing=(0.5, 0.5, 3.6)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


def _patched_pixdim(path: Path, pixdim: tuple[float, float, float]) -> Path:
    """A NIfTI-1 file whose pixdim[1..3] are overwritten (qform and sform codes cleared)."""
    image = sitk.GetImageFromArray(smooth_volume((6, 20, 20)))
    plain = path.with_name("plain.nii")
    sitk.WriteImage(image, str(plain))
    header = bytearray(plain.read_bytes())
    header[80:92] = struct.pack("<3f", *pixdim)
    header[252:256] = struct.pack("<2h", 0, 0)  # qform_code, sform_code: the header's pixdim rules
    path.write_bytes(gzip.compress(bytes(header)))
    plain.unlink()
    return path


def _nrrd(path: Path, fields: str, shape=(6, 20, 20)) -> Path:
    data = smooth_volume(shape).astype("<f4").tobytes()
    header = f"NRRD0004\ntype: float\ndimension: 3\nsizes: {shape[2]} {shape[1]} {shape[0]}\n{fields}encoding: raw\nendian: little\n\n"
    path.write_bytes(header.encode() + data)
    return path


def make_2d(folder: Path) -> Path:
    return _nifti(folder / "flat.nii.gz", smooth_volume((1, 30, 30))[0])


def make_single_slice(folder: Path) -> Path:
    return _nifti(folder / "one_slice.nii.gz", smooth_volume((1, 30, 30)))


def make_4d(folder: Path) -> Path:
    volume = sitk.GetImageFromArray(smooth_volume((6, 20, 20)))
    path = folder / "series4d.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([volume, volume, volume]), str(path))
    return path


def make_vector(folder: Path) -> Path:
    image = sitk.GetImageFromArray(np.stack([smooth_volume((6, 20, 20))] * 3, axis=-1), isVector=True)
    path = folder / "rgb.nrrd"
    sitk.WriteImage(image, str(path))
    return path


def make_constant(folder: Path) -> Path:
    return _nifti(folder / "constant.nii.gz", np.full((6, 20, 20), 7, dtype=np.int16))


def make_empty(folder: Path) -> Path:
    return _nifti(folder / "empty.nii.gz", np.zeros((6, 20, 20), dtype=np.float32))


def make_nan(folder: Path) -> Path:
    array = smooth_volume((6, 20, 20))
    array[3, 4, 5] = np.nan
    return _nifti(folder / "nan.nii.gz", array)


def make_inf(folder: Path) -> Path:
    array = smooth_volume((6, 20, 20))
    array[1, 2, 3] = -np.inf
    return _nifti(folder / "inf.nii.gz", array)


def make_nrrd_without_spacing(folder: Path) -> Path:
    return _nrrd(folder / "nospacing.nrrd", "")


def make_mha_without_spacing(folder: Path) -> Path:
    data = smooth_volume((6, 20, 20)).astype("<f4").tobytes()
    header = "ObjectType = Image\nNDims = 3\nDimSize = 20 20 6\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    path = folder / "nospacing.mha"
    path.write_bytes(header.encode() + data)
    return path


def make_zero_spacing_nifti(folder: Path) -> Path:
    return _patched_pixdim(folder / "zero.nii.gz", (0.5, 0.0, 3.6))


def make_negative_spacing_nifti(folder: Path) -> Path:
    return _patched_pixdim(folder / "negative.nii.gz", (0.5, -0.5, 3.6))


def make_zero_spacing_nrrd(folder: Path) -> Path:
    return _nrrd(folder / "zero.nrrd", "spacings: 0.5 0 3.6\n")


def make_garbage(folder: Path) -> Path:
    path = folder / "garbage.nii.gz"
    path.write_bytes(b"this is not an image at all" * 10)
    return path


def make_truncated(folder: Path) -> Path:
    """Half of an int16 NIfTI (SimpleITK itself would read it, with zeros for the missing half)."""
    whole = _nifti(folder / "whole.nii.gz", smooth_volume((6, 40, 40)).astype(np.int16))
    path = folder / "truncated.nii.gz"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return path


def make_truncated_mha(folder: Path) -> Path:
    whole = folder / "whole.mha"
    sitk.WriteImage(sitk.GetImageFromArray(smooth_volume((6, 40, 40)).astype(np.int16)), str(whole))
    path = folder / "truncated.mha"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return path


def make_too_large(folder: Path) -> Path:
    """A detached NRRD header announcing 3000 x 3000 x 2000 voxels with an empty data file.

    Reading the pixels would fail (or take 36 GB): only a refusal from the header passes.
    """
    (folder / "huge.raw").write_bytes(b"")
    path = folder / "huge.nhdr"
    path.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 3000 3000 2000\n"
        "space directions: (0.5,0,0) (0,0.5,0) (0,0,3.3)\nencoding: raw\nendian: little\ndata file: huge.raw\n\n"
    )
    return path


def _sagittal_int16() -> sitk.Image:
    return int16_image(smooth_volume((6, 24, 20)), (0.5, 0.6, 3.6), np.asarray(PIR_DIRECTION).reshape(3, 3))


def make_dicom_multi_echo(folder: Path) -> Path:
    series = folder / "echoes"
    write_dicom_series(_sagittal_int16(), series)
    write_dicom_series(_sagittal_int16(), series, first_instance=100)
    return series


def make_dicom_gap(folder: Path) -> Path:
    return write_dicom_series(_sagittal_int16(), folder / "gap", skip=(2,))


def make_dicom_without_pixel_spacing(folder: Path) -> Path:
    return write_dicom_series(_sagittal_int16(), folder / "nospacing", with_pixel_spacing=False)


def make_dicom_two_series(folder: Path) -> Path:
    series = folder / "mixed"
    write_dicom_series(_sagittal_int16(), series)
    write_dicom_series(_sagittal_int16(), series, series_uid="1.2.3.4.5", description="LOCALIZER", first_instance=50)
    return series


def make_missing(folder: Path) -> Path:
    return folder / "does-not-exist.nii.gz"


def make_folder_without_images(folder: Path) -> Path:
    empty = folder / "notes"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    return empty


# maker, words the one-line message must contain
BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "2-D image": (make_2d, ("2-D",)),
    "single slice": (make_single_slice, ("2-D",)),
    "4-D series": (make_4d, ("4-D",)),
    "colour / vector image": (make_vector, ("3 components",)),
    "constant image": (make_constant, ("constant", "7")),
    "empty (all zero) image": (make_empty, ("constant", "0")),
    "NaN voxel": (make_nan, ("1 NaN or infinite",)),
    "infinite voxel": (make_inf, ("1 NaN or infinite",)),
    "NRRD without spacing": (make_nrrd_without_spacing, ("no voxel spacing",)),
    "MetaImage without spacing": (make_mha_without_spacing, ("no voxel spacing",)),
    "NIfTI zero spacing": (make_zero_spacing_nifti, ("invalid voxel spacing", "0")),
    "NIfTI negative spacing": (make_negative_spacing_nifti, ("invalid voxel spacing", "-0.5")),
    "NRRD zero spacing": (make_zero_spacing_nrrd, ("invalid voxel spacing",)),
    "unreadable file": (make_garbage, ("cannot read garbage.nii.gz",)),
    "truncated NIfTI": (make_truncated, ("truncated",)),
    "truncated MetaImage": (make_truncated_mha, ("cannot read truncated.mha",)),
    "too large for memory": (make_too_large, ("GB of memory", "available")),
    "DICOM multi-echo series": (make_dicom_multi_echo, ("repeats slice positions", "4-D")),
    "DICOM series with a missing slice": (make_dicom_gap, ("unevenly spaced",)),
    "DICOM without PixelSpacing": (make_dicom_without_pixel_spacing, ("PixelSpacing",)),
    "two DICOM series in one folder": (make_dicom_two_series, ("2 DICOM series", "LOCALIZER")),
    "missing input": (make_missing, ("does not exist",)),
    "folder without images": (make_folder_without_images, ("no image files",)),
}


def _read(path: Path) -> sitk.Image:
    """What `batseg predict` does with one input, up to the pixels (with the memory check)."""
    pred = predictor("onnx")
    cases = find_cases(path)
    assert len(cases) == 1
    return read_image(cases[0], lambda info: pred.check_memory(info, cases[0].name))


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_raises_one_line_input_image_error(kind: str, tmp_path: Path) -> None:
    maker, words = BAD_INPUTS[kind]
    path = maker(tmp_path)
    with pytest.raises(InputImageError) as raised:
        _read(path)
    message = str(raised.value)
    assert "\n" not in message and len(message) < 400
    for word in words:
        assert word in message, f"{kind}: {message!r} lacks {word!r}"


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_through_the_cli(kind: str, tmp_path: Path, capfd, monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))
    path = BAD_INPUTS[kind][0](tmp_path / "in" if (tmp_path / "in").mkdir() is None else tmp_path)
    assert_predict_refuses(path, tmp_path / "out", capfd)


def test_too_large_is_refused_before_any_pixel_is_read(tmp_path: Path) -> None:
    path = make_too_large(tmp_path)
    info = read_image_info(find_cases(path)[0])
    assert info.size == (3000, 3000, 2000)
    assert predictor("onnx").estimate_peak_bytes(info) > 100 * 1024**3  # the data file is never opened
    normal = read_image_info(find_cases(_nifti(tmp_path / "ok.nii.gz", smooth_volume((15, 128, 128))))[0])
    estimate = predictor("onnx").estimate_peak_bytes(normal)
    assert 0.4 * 1024**3 < estimate < 2 * 1024**3
    predictor("onnx").check_memory(normal)


def test_cli_in_a_child_process_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = make_nan(tmp_path)
    result = run_cli("predict", "-i", str(path), "-o", str(tmp_path / "out"), "--model", str(light_model()))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "NaN" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_existing_output_is_not_overwritten_without_the_option(tmp_path: Path, capfd, monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))
    image = _nifti(tmp_path / "case.nii.gz", smooth_volume((6, 30, 30)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "case.report.csv").write_text("precious")
    args = ["predict", "-i", str(image), "-o", str(out), "--model", str(light_model()), "--progress", "quiet"]
    assert main(args) == 2
    assert "already exists" in capfd.readouterr().err
    assert (out / "case.report.csv").read_text() == "precious" and not (out / "case.nii.gz").exists()
    assert main(args + ["--overwrite"]) == 0
    assert (out / "case.nii.gz").is_file() and (out / "case.report.csv").read_text().startswith("case_id")


def test_an_input_is_never_overwritten(tmp_path: Path, capfd, monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))
    folder = tmp_path / "scans"
    folder.mkdir()
    image = _nifti(folder / "case.nii.gz", smooth_volume((6, 30, 30)))
    before = image.read_bytes()
    for args in (["-i", str(folder), "-o", str(folder)], ["-i", str(image), "-o", str(folder)]):
        status = main(["predict", *args, "--model", str(light_model()), "--progress", "quiet", "--overwrite"])
        assert status == 2 and "input" in capfd.readouterr().err
    assert image.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["case.nii.gz"]
