"""The cord locator's file format, planes and contrast check, without the shipped locator's weights.

Hostile locator files must be refused in one line before anything runs (the same rule as tumour
model files: a file never executes code); the planes must return a result to the scan's exact
grid whatever its storage order; the contrast check must tell fluid brighter than the cord (T2)
from fluid darker (T1).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from batseg.cord_locator.contrast_check import T2_RATIO, check_contrast, shell_ratio
from batseg.cord_locator.locator_file import FORMAT, load_locator, read_locator, write_locator
from batseg.cord_locator.network import ARCHITECTURE, build_locator
from batseg.cord_locator.planes import PLANE_SPACING_MM, from_planes_array, image_planes, mask_planes, pad_to_multiple
from batseg.errors import ModelFileError
from batseg.model_file import MANIFEST_MEMBER, WEIGHTS_MEMBER, sha256_bytes
from inference_helpers import cord_in_canal


@pytest.fixture(scope="module")
def locator_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return write_locator(tmp_path_factory.mktemp("loc") / "a.cordloc", build_locator(), {"name": "t", "version": "0"})


def _rewrite(source: Path, target: Path, manifest: dict | None = None, weights: bytes | None = None) -> Path:
    with zipfile.ZipFile(source) as archive:
        old_manifest = json.loads(archive.read(MANIFEST_MEMBER))
        old_weights = archive.read(WEIGHTS_MEMBER)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(MANIFEST_MEMBER, json.dumps(old_manifest if manifest is None else manifest))
        archive.writestr(WEIGHTS_MEMBER, old_weights if weights is None else weights)
    return target


def test_round_trip_gives_the_same_network(locator_file: Path) -> None:
    network, manifest = load_locator(locator_file)
    fresh = build_locator()
    torch.manual_seed(0)
    original = build_locator()
    assert manifest["format"] == FORMAT and manifest["architecture"] == ARCHITECTURE
    x = torch.randn(1, 1, 32, 48)
    with torch.inference_mode():
        assert torch.equal(network(x), original.eval()(x))
        assert not torch.equal(network(x), fresh.eval()(x))


def test_tampered_weights_are_refused(locator_file: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(locator_file) as archive:
        weights = bytearray(archive.read(WEIGHTS_MEMBER))
    weights[-1] ^= 0xFF
    bad = _rewrite(locator_file, tmp_path / "bad.cordloc", weights=bytes(weights))
    with pytest.raises(ModelFileError, match="checksum"):
        read_locator(bad)


def test_a_pickle_in_place_of_the_weights_is_never_unpickled(locator_file: Path, tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):
            return (Path(tmp_path / "ran").touch, ())

    payload = pickle.dumps(Boom())
    manifest = json.loads(zipfile.ZipFile(locator_file).read(MANIFEST_MEMBER))
    manifest["weights_sha256"] = sha256_bytes(payload)
    bad = _rewrite(locator_file, tmp_path / "pickle.cordloc", manifest=manifest, weights=payload)
    with pytest.raises(ModelFileError, match="unreadable|corrupt"):
        load_locator(bad)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("change, says", [
    (lambda m: m.update(format="batseg-model"), "not a cord locator"),
    (lambda m: m.update(format_version=99), "update batseg"),
    (lambda m: m.update(format_version=True), "update batseg"),
    (lambda m: m["architecture"].update(features_per_stage=[4096] * 5), "differs"),
    (lambda m: m.update(plane_spacing_mm=0.1), "differs"),
    (lambda m: m.pop("weights_sha256"), "weights_sha256"),
])
def test_bad_manifests_are_refused_in_one_line(locator_file: Path, tmp_path: Path, change, says: str) -> None:
    manifest = json.loads(zipfile.ZipFile(locator_file).read(MANIFEST_MEMBER))
    change(manifest)
    bad = _rewrite(locator_file, tmp_path / "m.cordloc", manifest=manifest)
    with pytest.raises(ModelFileError, match=says) as caught:
        load_locator(bad)
    assert "\n" not in str(caught.value)


def test_nan_weights_and_foreign_shapes_are_refused(locator_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import save

    from batseg.model_file import unique_tensors

    network = build_locator()
    state = unique_tensors(dict(network.state_dict()))
    first = next(iter(state))
    for name, tensors, says in (("nan", {**state, first: torch.full_like(state[first], float("nan"))}, "NaN"),
                                ("shape", {**state, first: torch.zeros(3)}, "do not fit")):
        weights = save(tensors)
        manifest = json.loads(zipfile.ZipFile(locator_file).read(MANIFEST_MEMBER))
        manifest["weights_sha256"] = sha256_bytes(weights)
        with pytest.raises(ModelFileError, match=says):
            load_locator(_rewrite(locator_file, tmp_path / f"{name}.cordloc", manifest=manifest, weights=weights))


def test_not_a_zip_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.cordloc").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a cord locator file"):
        read_locator(tmp_path / "x.cordloc")
    with pytest.raises(ModelFileError, match="does not exist"):
        read_locator(tmp_path / "missing.cordloc")


def test_write_does_not_replace_an_existing_file(locator_file: Path) -> None:
    before = locator_file.read_bytes()
    with pytest.raises(ModelFileError, match="already exists"):
        write_locator(locator_file, build_locator(), {"name": "other"})
    assert locator_file.read_bytes() == before


def _image(array: np.ndarray, spacing=(0.5, 0.5, 3.6), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    return image


@pytest.mark.parametrize("direction", [None, (0, 0, 1, 1, 0, 0, 0, 1, 0), (-1, 0, 0, 0, 0, 1, 0, -1, 0)])
def test_planes_return_to_the_exact_grid(direction) -> None:
    rng = np.random.default_rng(1)
    array = rng.normal(size=(7, 90, 70)).astype(np.float32)
    image = _image(array, direction=direction)
    planes = image_planes(image)
    assert planes.planes.dtype == np.float32 and abs(float(planes.planes.mean())) < 0.1
    # 0.5 mm in-plane at 1.5 mm: a third of the rows and columns along the in-plane axes.
    back = planes.mapping.to_input(from_planes_array(planes.planes, planes.model_shape))
    assert back.shape == array.shape
    mask = np.zeros(array.shape, bool)
    mask[3, 30:60, 20:40] = True
    assert mask_planes(mask, planes).sum() > 0


def test_planes_are_resampled_to_the_locator_spacing() -> None:
    pir = (0, 0, -1, 1, 0, 0, 0, -1, 0)  # index i -> posterior, j -> inferior, k -> right
    image = _image(np.zeros((5, 60, 60), np.float32), spacing=(0.5, 0.75, 3.0), direction=pir)
    planes = image_planes(image)
    assert planes.planes.shape[0] == 5  # one plane per left-right slice
    assert planes.planes.shape[1] * PLANE_SPACING_MM == pytest.approx(60 * 0.75, abs=PLANE_SPACING_MM)  # rows: SI
    assert planes.planes.shape[2] * PLANE_SPACING_MM == pytest.approx(60 * 0.5, abs=PLANE_SPACING_MM)  # cols: AP
    # The same volume stored axially (identity direction): the planes are still sagittal.
    axial = image_planes(_image(np.zeros((5, 60, 60), np.float32), spacing=(0.5, 0.75, 3.0)))
    assert axial.planes.shape[0] == 60 and axial.planes.shape[1] * PLANE_SPACING_MM == pytest.approx(15, abs=1.5)


def test_padding_to_the_network_multiple() -> None:
    padded, size = pad_to_multiple(np.ones((2, 33, 80), np.float32))
    assert padded.shape == (2, 64, 80) and size == (33, 80) and padded[:, 33:].sum() == 0
    assert pad_to_multiple(np.ones((1, 100, 5), np.float32))[0].shape == (1, 112, 64)


def test_the_contrast_check_tells_t2_from_t1() -> None:
    t2_volume, mask = cord_in_canal(fluid=250.0)
    t1_volume, _ = cord_in_canal(fluid=30.0)
    t2, t1 = check_contrast(t2_volume, mask, (1.0, 1.0, 1.0)), check_contrast(t1_volume, mask, (1.0, 1.0, 1.0))
    assert t2.looks_t2 and t2.ratio > T2_RATIO and "T2-weighted" in t2.warning()
    assert not t1.looks_t2 and t1.ratio < 1 and t1.warning() is None


def test_the_contrast_check_needs_a_cord() -> None:
    volume, _ = cord_in_canal(fluid=250.0)
    tiny = np.zeros(volume.shape, bool)
    tiny[15, 30, 20] = True
    assert shell_ratio(volume, tiny, (1.0, 1.0, 1.0)) is None
    assert not check_contrast(volume, tiny, (1.0, 1.0, 1.0)).looks_t2
