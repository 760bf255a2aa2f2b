"""Tests of the synthetic phantom generator, the dataset writer, `batseg phantom` and the
bundled sample data (synthetic data; not for clinical use)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main as cli_main
from batseg.errors import BATsegError
from batseg.labels import NNUNET_LABELS
from batseg.phantoms import generate_case
from batseg.phantoms.acquisition import (FOV_AP_MM, PIXEL_RANGE_MM, SLICE_SPACING_RANGE_MM, SLICES_RANGE,
                                         draw_acquisition)
from batseg.phantoms.dataset import case_seed, plan_dataset, write_dataset
from batseg.phantoms.samples import SAMPLE_DIR, sample_cases, sample_path, sha256_of

SMALL = {"matrix": 192, "n_slices": 9}  # fast cases (about 1 mm pixels)


def arrays(case):
    return {k: sitk.GetArrayFromImage(getattr(case, k)) for k in ("image", "label", "cord", "sac")}


def geometry(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


# ----- determinism and geometry ------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_other_seeds_differ():
    a, b = generate_case(11, **SMALL), generate_case(11, **SMALL)
    for key, value in arrays(a).items():
        assert np.array_equal(value, arrays(b)[key]), key
    assert geometry(a.image) == geometry(b.image)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)
    c = generate_case(12, **SMALL)
    same_shape = arrays(c)["image"].shape == arrays(a)["image"].shape
    assert not same_shape or not np.array_equal(arrays(c)["image"], arrays(a)["image"])
    assert c.meta["seed"] == 12 and a.meta["seed"] == 11


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_images_share_one_oblique_sagittal_geometry(seed):
    case = generate_case(seed, **SMALL)
    ref = geometry(case.image)
    for key in ("label", "cord", "sac"):
        assert geometry(getattr(case, key)) == ref, key
    assert case.image.GetPixelID() == sitk.sitkInt16
    assert case.label.GetPixelID() == sitk.sitkUInt8 and case.cord.GetPixelID() == sitk.sitkUInt8
    a = arrays(case)
    assert set(np.unique(a["label"])) <= {0, 1, 2, 3, 4}
    assert set(np.unique(a["cord"])) <= {0, 1} and a["cord"].any()
    assert a["image"].min() >= 0 and a["image"].max() > 100
    d = np.array(case.image.GetDirection()).reshape(3, 3)
    assert np.isclose(np.linalg.det(d), 1.0)
    # i -> posterior, j -> inferior, k -> right (LPS), each within the drawn obliquity (<= 5 deg
    # about each axis, hence < 9 degrees between an index axis and its anatomical axis).
    cos9 = np.cos(np.deg2rad(9))
    assert d[1, 0] > cos9 and d[2, 1] < -cos9 and d[0, 2] < -cos9
    assert not np.allclose(np.abs(d), np.round(np.abs(d)))  # oblique, as a scanner writes it


def test_float32_output_and_bad_arguments():
    case = generate_case(5, dtype="float32", **SMALL)
    assert case.image.GetPixelID() == sitk.sitkFloat32
    with pytest.raises(BATsegError):
        generate_case(5, tumour_types=[7])
    with pytest.raises(BATsegError):
        generate_case(5, region="sacral")
    with pytest.raises(BATsegError):
        generate_case(-1)
    with pytest.raises(BATsegError):
        generate_case(5, acquisition={"shape": (1, 1, 1)})


# ----- acquisition ranges ----------------------------------------------------------------------
def test_drawn_acquisitions_stay_in_range():
    for seed in range(300):
        rng = np.random.default_rng(seed)
        region = ("cervical", "thoracic", "lumbar")[seed % 3]
        acq = draw_acquisition(rng, region)
        ni, nj, nk = acq.shape
        assert PIXEL_RANGE_MM[0] - 1e-9 <= acq.pixel_mm <= PIXEL_RANGE_MM[1] + 1e-9
        assert SLICE_SPACING_RANGE_MM[0] <= acq.slice_spacing_mm <= SLICE_SPACING_RANGE_MM[1]
        assert SLICE_SPACING_RANGE_MM[0] <= acq.slice_thickness_mm <= acq.slice_spacing_mm + 1e-9
        assert SLICES_RANGE[0] <= nk <= SLICES_RANGE[1]
        assert acq.n_sub % 2 == 1 and acq.slice_thickness_mm / acq.n_sub <= 1.2 + 1e-9
        ap, si = acq.fov_mm
        assert 159.0 <= si <= 301.0 and FOV_AP_MM[0] - 1.0 <= ap <= FOV_AP_MM[1] + 1.0
        assert max(np.abs(acq.rotation_deg)) <= 5.0


def test_full_size_case_header_matches_its_acquisition():
    case = generate_case(21)
    acq = case.meta["acquisition"]
    assert list(case.image.GetSize()) == list(acq["shape"])
    assert np.allclose(case.image.GetSpacing(), (acq["pixel_mm"], acq["pixel_mm"], acq["slice_spacing_mm"]))
    assert 0.35 <= acq["pixel_mm"] <= 1.0 and 9 <= acq["shape"][2] <= 20


# ----- tumour location rules -------------------------------------------------------------------
LOCATION_CASES = [(t, seed, region) for t, region in
                  [(1, "thoracic"), (1, "cervical"), (2, "cervical"), (2, "lumbar"), (3, "thoracic"),
                   (3, "cervical"), (4, "thoracic"), (4, "cervical")] for seed in (100, 101)]


@pytest.mark.parametrize("tumour_type,seed,region", LOCATION_CASES)
def test_each_tumour_type_follows_its_location_rule(tumour_type, seed, region):
    opts = {"matrix": 320, "n_slices": 11}
    case = generate_case(seed, [tumour_type], region, **opts)
    twin = generate_case(seed, region=region, healthy=True, **opts)  # same anatomy, no tumour
    a, h = arrays(case), arrays(twin)
    label = a["label"]
    assert set(np.unique(label)) == {0, tumour_type}
    tumour = label > 0
    voxel_cm3 = np.prod(case.image.GetSpacing()) / 1000
    assert 0.01 < tumour.sum() * voxel_cm3 < 25
    assert case.meta["tumour_types"] == [tumour_type]
    if tumour_type == 1:
        # Meningioma: intradural extramedullary: inside the dural sac, outside the (displaced) cord.
        assert not np.any(tumour & (a["cord"] > 0))
        assert np.all(a["sac"][tumour] > 0)
    else:
        # Intramedullary: overlaps the pre-tumour cord (a hemangioblastoma nodule sits at its
        # surface, a lumbar ependymoma at the conus and along the filum below it), and the cord
        # mask now contains the tumour.
        overlap = np.count_nonzero(tumour & (h["cord"] > 0)) / tumour.sum()
        partial = tumour_type == 4 or case.meta["lesions"][0].get("conus", False)
        assert overlap > (0.05 if partial else 0.3)
        assert np.all(a["cord"][tumour] > 0)


def test_meningioma_displaces_the_cord_and_intramedullary_tumours_expand_it():
    opts = {"matrix": 320, "n_slices": 11}
    men = arrays(generate_case(100, [1], "thoracic", **opts))
    men_h = arrays(generate_case(100, region="thoracic", healthy=True, **opts))
    rows = np.nonzero(men["label"].any(axis=(0, 2)))[0]
    moved = men["cord"][:, rows] != men_h["cord"][:, rows]
    assert moved.mean() > 0.001  # the cord moved where the meningioma is
    epe = arrays(generate_case(100, [2], "cervical", **opts))
    epe_h = arrays(generate_case(100, region="cervical", healthy=True, **opts))
    rows = np.nonzero(epe["label"].any(axis=(0, 2)))[0]
    assert epe["cord"][:, rows].sum() > epe_h["cord"][:, rows].sum()


def test_healthy_cases_have_no_tumour():
    for seed in (3, 4):
        case = generate_case(seed, healthy=True, **SMALL)
        a = arrays(case)
        assert not a["label"].any() and a["cord"].any()
        assert case.meta["healthy"] and case.meta["tumour_types"] == []


def test_several_lesions_in_one_case():
    case = generate_case(8, [4, 4], "thoracic", matrix=320, n_slices=11)
    kept = case.meta["tumour_types"] + case.meta["dropped_tumour_types"]
    assert kept == [4, 4]
    assert len(case.meta["lesions"]) == len(case.meta["tumour_types"]) >= 1


def test_t2_negatives_have_the_same_anatomy_with_bright_csf():
    t1 = generate_case(5, region="cervical", healthy=True, **SMALL)
    t2 = generate_case(5, region="cervical", healthy=True, contrast="t2", **SMALL)
    a1, a2 = arrays(t1), arrays(t2)
    for key in ("label", "cord", "sac"):
        assert np.array_equal(a1[key], a2[key]), key  # same seed, same anatomy and geometry
    assert t2.meta["contrast"] == "t2" and t1.meta["contrast"] == "t1gd" and t2.meta["healthy"]
    csf = (a1["sac"] > 0) & (a1["cord"] == 0)
    cord = a1["cord"] > 0
    for a, brighter in ((a1, "cord"), (a2, "csf")):
        ratio = a["image"][csf].mean() / a["image"][cord].mean()
        assert (ratio > 1.5) if brighter == "csf" else (ratio < 0.9), (brighter, ratio)


def test_t2_phantoms_are_healthy_only():
    with pytest.raises(BATsegError, match="healthy negatives only"):
        generate_case(5, [1], contrast="t2", **SMALL)
    with pytest.raises(BATsegError, match="contrast must be one of"):
        generate_case(5, healthy=True, contrast="flair", **SMALL)


# ----- dataset writer and command --------------------------------------------------------------
def test_dataset_plan_is_balanced_and_seeds_do_not_depend_on_size():
    plans = plan_dataset(40, seed=5, healthy_fraction=0.1)
    types = [p.tumour_types[0] if p.tumour_types else 0 for p in plans]
    assert types.count(0) == 4 and all(types.count(t) == 9 for t in (1, 2, 3, 4))
    assert [p.seed for p in plan_dataset(10, 5, 0.1)] == [p.seed for p in plans[:10]]
    assert len({p.seed for p in plans}) == 40 and plans[3].seed == case_seed(5, 3)
    assert {p.contrast for p in plans} == {"t1gd"}


def test_t2_negatives_take_the_tumour_cases_share_and_leave_t1_plans_unchanged():
    plans = plan_dataset(40, seed=5, healthy_fraction=0.1, t2_fraction=0.2)
    t2 = [p for p in plans if p.contrast == "t2"]
    assert len(t2) == 8 and all(not p.tumour_types for p in t2)
    assert sum(not p.tumour_types for p in plans) == 12
    assert [p.contrast for p in plan_dataset(3, 0, 0.5, 0.5)].count("t1gd") == 2  # 1.5 + 1.5 rounded: still 3 cases
    # The shipped model's training plan (200 phantoms, seed 2026), as made before T2 negatives existed.
    shipped = [(p.case_id, p.seed, p.tumour_types) for p in plan_dataset(200, 2026, 0.1)]
    assert hashlib.sha256(json.dumps(shipped).encode()).hexdigest()[:16] == "d40ab154854f5a26"


def test_write_dataset_layout_passes_nnunet_check(tmp_path):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = write_dataset(tmp_path, 4, seed=3, healthy_fraction=0.25, matrix=128, n_slices=9)
    assert folder == tmp_path / "Dataset501_BATsegPhantoms"
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "T1Gd"} and ds["labels"] == NNUNET_LABELS
    assert ds["numTraining"] == 4 and ds["file_ending"] == ".nii.gz"
    assert "not for clinical use" in ds["description"]
    ids = [f"phantom_{i:04d}" for i in range(4)]
    for case_id in ids:
        image = sitk.ReadImage(str(folder / "imagesTr" / f"{case_id}_0000.nii.gz"))
        for sub in ("labelsTr", "cordTr"):
            other = sitk.ReadImage(str(folder / sub / f"{case_id}.nii.gz"))
            assert other.GetSize() == image.GetSize()
            assert np.allclose(other.GetDirection(), image.GetDirection())
    assert not list(folder.rglob(".*"))  # no temporary file left behind
    meta = json.loads((folder / "phantoms.json").read_text())["cases"]
    assert sorted(meta) == ids
    assert sum(m["healthy"] for m in meta.values()) == 1
    # Any case can be regenerated alone from its stored seed and plan.
    m = meta["phantom_0002"]
    again = generate_case(m["seed"], m["plan_types"] or None, healthy=not m["plan_types"], matrix=128, n_slices=9)
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "imagesTr" / "phantom_0002_0000.nii.gz")))
    assert np.array_equal(sitk.GetArrayFromImage(again.image), stored)
    verify_dataset_integrity(str(folder), 1)
    with pytest.raises(BATsegError, match="--overwrite"):
        write_dataset(tmp_path, 2, seed=3, matrix=128, n_slices=9)
    write_dataset(tmp_path, 2, seed=4, matrix=128, n_slices=9, overwrite=True)
    assert len(list((folder / "imagesTr").iterdir())) == 2
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 2


def test_phantom_command(tmp_path, capsys):
    args = ["phantom", "-o", str(tmp_path), "-n", "2", "--seed", "9", "--matrix", "96", "--slices", "9",
            "--progress", "json", "--name", "Dataset777_Tiny"]
    assert cli_main(args) == 0
    events = [json.loads(line[len("BATSEG "):]) for line in capsys.readouterr().out.splitlines()
              if line.startswith("BATSEG ")]
    assert events[-1]["event"] == "result"
    assert events[-1]["outputs"]["dataset"] == str(tmp_path / "Dataset777_Tiny")
    assert any(e["event"] == "progress" and e["done"] == 2 for e in events)
    assert (tmp_path / "Dataset777_Tiny" / "dataset.json").is_file()
    assert cli_main(args) == 2  # refuses to write into the existing dataset
    assert cli_main(args[:-2] + ["--name", "not_nnunet_style"]) == 2


@pytest.mark.parametrize("bad, message", [
    (["--seed", "-1"], "seed must be a non-negative"),
    (["--matrix", "0"], "--matrix must be between"),
    (["--slices", "0"], "--slices must be between"),
    (["--t2-negative-fraction", "0.95"], "T2 negative fraction must be between"),
])
def test_bad_phantom_arguments_fail_before_an_existing_dataset_is_touched(tmp_path, capfd, bad, message):
    args = ["phantom", "-o", str(tmp_path), "-n", "1", "--seed", "9", "--matrix", "64", "--slices", "9",
            "--progress", "quiet", "--name", "Dataset778_Kept"]
    assert cli_main(args) == 0
    before = sorted(p.name for p in (tmp_path / "Dataset778_Kept" / "imagesTr").iterdir())
    capfd.readouterr()
    assert cli_main(args + bad + ["--overwrite"]) == 2
    err = capfd.readouterr().err.strip()
    assert message in err and err.splitlines() == [err]
    assert sorted(p.name for p in (tmp_path / "Dataset778_Kept" / "imagesTr").iterdir()) == before


# ----- sample data -----------------------------------------------------------------------------
def test_sample_data_is_complete_and_checksummed():
    cases = sample_cases()
    assert sorted(c["tumour_type"] for c in cases) == [1, 2, 3, 4]
    total = 0
    for c in cases:
        for kind in ("image", "label", "thumbnail"):
            path = sample_path(c["name"], kind)
            assert sha256_of(path) == c[f"{kind}_sha256"]
            total += path.stat().st_size
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(sample_path(c["name"], "label"))))
        image = sitk.ReadImage(str(sample_path(c["name"])))
        assert set(np.unique(label)) == {0, c["tumour_type"]}
        assert image.GetSize() == tuple(c["size"]) and image.GetPixelID() == sitk.sitkInt16
    assert total <= 8 * 1024 * 1024


def test_sample_path_rejects_missing_or_modified_files(tmp_path):
    copy = tmp_path / "SampleData"
    shutil.copytree(SAMPLE_DIR, copy)
    name = sample_cases()[0]["name"]
    assert sample_path(name, sample_dir=copy).is_file()
    image = copy / sample_cases()[0]["image"]
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF
    image.write_bytes(bytes(data))
    with pytest.raises(BATsegError, match="modified"):
        sample_path(name, sample_dir=copy)
    (copy / sample_cases()[0]["label"]).unlink()
    with pytest.raises(BATsegError, match="missing"):
        sample_path(name, "label", sample_dir=copy)
    with pytest.raises(BATsegError, match="no sample case"):
        sample_path("NoSuchCase", sample_dir=copy)
