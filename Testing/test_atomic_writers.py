"""Every temporary-name-then-rename write of the engine goes through `batseg.atomic_files` (issue 20,
item 7): a write that fails leaves the previous file as it was and no temporary behind, and the
temporary's name is unique (another writer, or something left at a fixed name, never collides).

One test per site: the rename itself (write_atomically, write_all_or_nothing), nnU-Net's splits
file, the cord locations written into nnU-Net's preprocessed cases, the imported training
dataset folder, the phantom images and records, the ONNX cache.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from batseg import atomic_files
from batseg.atomic_files import text_writer, write_all_or_nothing, write_atomically
from batseg.errors import BATsegError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_data import make_dataset  # noqa: E402


def _disk_full(path: os.PathLike | str) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def _names(folder: Path) -> list[str]:
    """Every name below `folder`, hidden ones included (a temporary left behind shows here)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def half_written_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Path.write_text writes half its text, then the disk is full (as a real writer fails)."""
    real = Path.write_text

    def write_half(self: Path, text: str, *args, **kwargs) -> int:
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise _disk_full(self)

    monkeypatch.setattr(Path, "write_text", write_half)


# ------------------------------------------------------------------ the rename itself


def test_a_failed_rename_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")

    def refused(source: object, destination: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(destination))

    monkeypatch.setattr(atomic_files.os, "replace", refused)
    with pytest.raises(PermissionError):
        write_atomically(target, text_writer("new"), overwrite=True)
    assert _names(tmp_path) == ["out.json"] and target.read_text() == "old"
    with pytest.raises(PermissionError):
        write_all_or_nothing([(tmp_path / "a", text_writer("a"), ""), (tmp_path / "b", text_writer("b"), "")], True)
    assert _names(tmp_path) == ["out.json"]


def test_a_commit_that_refuses_to_replace_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.batseg"

    def never_replace(temporary: Path, path: Path) -> None:
        path.write_text("appeared meanwhile")
        raise BATsegError(f"{path} already exists")

    with pytest.raises(BATsegError, match="already exists"):
        write_atomically(target, text_writer("copy"), overwrite=False, commit=never_replace)
    assert _names(tmp_path) == ["model.batseg"] and target.read_text() == "appeared meanwhile"


def test_a_folder_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    def fill_then_fail(folder: Path) -> None:
        (folder / "imagesTr").mkdir()
        (folder / "imagesTr" / "a.nii.gz").write_text("image")
        raise _disk_full(folder / "dataset.json")

    with pytest.raises(OSError):
        atomic_files.write_folder_atomically(tmp_path / "Dataset900_X", fill_then_fail)
    assert _names(tmp_path) == []
    made = atomic_files.write_folder_atomically(tmp_path / "Dataset900_X", lambda f: (f / "dataset.json").write_text("{}"))
    assert _names(tmp_path) == ["Dataset900_X", "Dataset900_X/dataset.json"] and made == tmp_path / "Dataset900_X"
    assert made.stat().st_mode & 0o777 == 0o777 & ~atomic_files._current_umask()  # as mkdir would make it
    with pytest.raises(BATsegError, match="already exists"):
        atomic_files.write_folder_atomically(made, lambda f: None)


def test_a_killed_writers_temporary_folder_is_removed_a_live_ones_kept(tmp_path: Path) -> None:
    host = atomic_files._host_tag()
    dead = tmp_path / f".Dataset900_X.abcdefgh.{_dead_pid()}-{host}.part"
    live = tmp_path / f".Dataset901_X.abcdefgh.{os.getpid()}-{host}.part"
    other_host = tmp_path / f".Dataset902_X.abcdefgh.1-{'0' * 8}.part"
    for folder in (dead, live, other_host):
        (folder / "imagesTr").mkdir(parents=True)
        (folder / "imagesTr" / "a_0000.nii.gz").symlink_to(tmp_path / "source.nii.gz")
    (tmp_path / "source.nii.gz").write_text("the user's image")
    old = 0.0  # a folder's own age says nothing (it is filled inside its subfolders): never judged by it
    os.utime(other_host, (old, old))
    assert atomic_files.remove_stale_parts(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_host.name, "source.nii.gz"])
    assert (tmp_path / "source.nii.gz").read_text() == "the user's image"  # links are removed, not followed


# ------------------------------------------------------------------ training: splits, cord locations, datasets


def test_a_failed_write_of_the_splits_file_keeps_the_old_one(tmp_path: Path, half_written_text: None) -> None:
    from batseg.training.splits import write_splits

    (tmp_path / "splits_final.json").write_bytes(b"[]")
    with pytest.raises(OSError):
        write_splits(tmp_path, [{"train": ["a"], "val": ["b"]}])
    assert (tmp_path / "splits_final.json").read_bytes() == b"[]"
    assert _names(tmp_path) == ["splits_final.json"]


def test_the_splits_file_is_written_under_a_unique_name(tmp_path: Path) -> None:
    from batseg.training.splits import write_splits

    (tmp_path / "splits_final.json.tmp").mkdir()  # squatting the name a fixed temporary would take
    splits = [{"train": ["a"], "val": ["b"]}]
    assert write_splits(tmp_path, splits) == tmp_path / "splits_final.json"
    assert json.loads((tmp_path / "splits_final.json").read_text()) == splits


def _preprocessed_case(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tumour-free case as `batseg train` leaves it before the cord step: raw label linked to
    a source dataset with a cord mask, preprocessed properties in a pickle."""
    source, raw, preprocessed = tmp_path / "source", tmp_path / "raw", tmp_path / "preprocessed"
    for folder in (source / "labelsTr", source / "cordTr", raw / "labelsTr", preprocessed / "plans_3d_fullres"):
        folder.mkdir(parents=True)
    (source / "labelsTr" / "case.nii.gz").write_bytes(b"label")
    (source / "cordTr" / "case.nii.gz").write_bytes(b"cord")
    (raw / "labelsTr" / "case.nii.gz").symlink_to(source / "labelsTr" / "case.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}))
    pkl = preprocessed / "plans_3d_fullres" / "case.pkl"
    pkl.write_bytes(pickle.dumps({"class_locations": {1: []}}))
    return raw, preprocessed, pkl


def test_a_failed_write_of_cord_locations_leaves_the_case_as_nnunet_wrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchgenerators.utilities.file_and_folder_operations as bg
    import nnunetv2.utilities.plans_handling.plans_handler as plans_handler

    from batseg.training import negative_sampling

    raw, preprocessed, pkl = _preprocessed_case(tmp_path)
    as_written = pkl.read_bytes()
    monkeypatch.setattr(plans_handler, "PlansManager", lambda path: SimpleNamespace(get_configuration=lambda name: None))
    monkeypatch.setattr(negative_sampling, "_cord_locations", lambda *args: np.array([[0, 1, 2, 3]]))

    def write_half(data: object, path: str) -> None:
        Path(path).write_bytes(pickle.dumps(data)[:10])
        raise _disk_full(path)

    monkeypatch.setattr(bg, "write_pickle", write_half)
    with pytest.raises(OSError):
        negative_sampling.add_cord_locations(raw, preprocessed, "plans", "3d_fullres")
    assert pkl.read_bytes() == as_written
    assert _names(pkl.parent) == ["case.pkl"]


def test_a_failed_import_leaves_no_half_linked_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batseg.training import datasets

    dataset = datasets.read_raw_dataset(make_dataset(tmp_path / "data", n_cases=2, shape=(4, 16, 16)))
    raw = tmp_path / "raw"
    raw.mkdir()
    real_link, calls = datasets._link, []

    def link_then_fail(source: Path, target: Path) -> None:
        calls.append(target)
        if len(calls) == 3:  # the second case's image
            raise _disk_full(target)
        real_link(source, target)

    monkeypatch.setattr(datasets, "_link", link_then_fail)
    with pytest.raises(OSError):
        datasets.import_dataset(dataset, raw)
    assert _names(raw) == []  # nothing nnU-Net (or the next import's ID search) could take for a dataset
    monkeypatch.setattr(datasets, "_link", real_link)
    assert datasets.import_dataset(dataset, raw) == "Dataset900_data"  # the ID is still free


def test_an_import_killed_earlier_is_cleared_by_the_next(tmp_path: Path) -> None:
    from batseg.training import datasets

    dataset = datasets.read_raw_dataset(make_dataset(tmp_path / "data", n_cases=1, shape=(4, 16, 16)))
    left = tmp_path / "raw" / f".Dataset900_data.abcdefgh.{_dead_pid()}-{atomic_files._host_tag()}.part"
    (left / "imagesTr").mkdir(parents=True)
    assert datasets.import_dataset(dataset, tmp_path / "raw") == "Dataset900_data"
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset900_data"]


# ------------------------------------------------------------------ phantoms


def test_a_failed_phantom_image_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batseg.phantoms import dataset

    target = tmp_path / "imagesTr" / "phantom_0000_0000.nii.gz"
    target.parent.mkdir()
    target.write_bytes(b"old image")

    def write_half(image: sitk.Image, path: str, *args: object) -> None:
        Path(path).write_bytes(b"half")
        raise RuntimeError("ITK ERROR: NiftiImageIO: cannot write")

    monkeypatch.setattr(sitk, "WriteImage", write_half)
    with pytest.raises(RuntimeError):
        dataset._atomic_write_image(sitk.Image(4, 4, 4, sitk.sitkUInt8), target)
    assert target.read_bytes() == b"old image"
    assert _names(tmp_path) == ["imagesTr", "imagesTr/phantom_0000_0000.nii.gz"]


def test_a_failed_phantom_record_write_keeps_the_old_file(tmp_path: Path, half_written_text: None) -> None:
    from batseg.phantoms import dataset

    (tmp_path / "dataset.json").write_bytes(b'{"old": true}')
    with pytest.raises(OSError):
        dataset._atomic_write_json({"new": True}, tmp_path / "dataset.json")
    assert (tmp_path / "dataset.json").read_bytes() == b'{"old": true}'
    assert _names(tmp_path) == ["dataset.json"]


def test_a_phantom_dataset_leaves_no_temporary(tmp_path: Path) -> None:
    from batseg.phantoms.dataset import write_dataset

    folder = write_dataset(tmp_path, 1, seed=3, matrix=64, n_slices=5)
    assert not [name for name in _names(folder) if Path(name).name.startswith(".")]
    assert sitk.ReadImage(str(folder / "labelsTr" / "phantom_0000.nii.gz")).GetSize()[0] > 0  # a real image file


# ------------------------------------------------------------------ the ONNX cache


def test_a_failed_onnx_export_keeps_the_cached_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from batseg.inference import backends
    from batseg.model_file import verify
    from inference_helpers import light_model

    model = light_model()
    destination = tmp_path / "model.onnx"
    destination.write_bytes(b"an earlier export")

    def export_half(model: object, args: object, path: str, **kwargs: object) -> None:
        Path(path).write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", export_half)
    with pytest.raises(BATsegError, match=r"could not be exported to ONNX \(exporter crashed\)"):
        backends.export_onnx(model, verify(model), destination)
    assert _names(tmp_path) == ["model.onnx"] and destination.read_bytes() == b"an earlier export"


def test_an_unwritable_onnx_cache_is_named_with_its_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batseg.inference import backends
    from batseg.model_file import verify
    from inference_helpers import light_model

    model = light_model()
    cache = tmp_path / "cache"
    cache.mkdir()
    real_access = os.access  # tests may run as root, for whom permission bits do not apply
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == cache else real_access(path, mode))
    with pytest.raises(BATsegError, match=f"^cannot write the ONNX cache in {cache}/onnx; set BATSEG_CACHE_DIR"):
        backends.ensure_onnx(model, verify(model), cache)
    assert _names(cache) == []
