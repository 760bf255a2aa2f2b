"""The Slicer module's temporary-name-then-rename writes go through `batseg.atomic_files` (issue 20,
item 7): a run folder's owner record, a model file added to the user folder, the export's
dataset.json, provenance record and quarantine note. A failed write leaves the previous file
and no temporary; a temporary left by a killed export is removed by the next one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batseg import atomic_files
from batseg.errors import BATsegError
from BATsegSlicerLib import export, models, run_folders
from BATsegSlicerLib.models import ModelLibrary
from BATsegSlicerLib.segmentation import create_tumour_segmentation

from slicer_test_support import make_model_file


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _killed_writers_temporary(folder: Path, name: str) -> Path:
    """What `batseg.atomic_files` leaves when its process is killed while writing `name`."""
    path = folder / f".{name}.abcdefgh.{_dead_pid()}-{atomic_files._host_tag()}.part"
    path.write_text("half")
    return path


def test_a_failed_owner_record_write_keeps_the_old_record(tmp_path):
    folder = run_folders.new_run_folder(str(tmp_path))
    before = Path(folder, run_folders.OWNER_FILE).read_text()
    with pytest.raises(TypeError):
        run_folders._write_owner(folder, {"pid": os.getpid(), "child_pid": object()})  # not JSON
    assert Path(folder, run_folders.OWNER_FILE).read_text() == before
    assert os.listdir(folder) == [run_folders.OWNER_FILE]


def test_a_model_file_that_appears_meanwhile_is_kept_and_the_copy_removed(tmp_path, monkeypatch):
    library = ModelLibrary(user_dir=str(tmp_path / "user"), shipped_dir=str(tmp_path / "shipped"))
    source = make_model_file(tmp_path / "mine.batseg", name="mine", weights=b"my weights")
    real_verify = models.verify

    def verify_then_someone_writes(path):
        manifest = real_verify(path)
        if os.path.dirname(path) == library.user_dir:  # the copy: the target name is taken now
            Path(library.user_dir, "mine.batseg").write_bytes(b"another program's file")
        return manifest

    monkeypatch.setattr(models, "verify", verify_then_someone_writes)
    with pytest.raises(BATsegError, match="already exists and is never overwritten"):
        library.add(str(source))
    assert os.listdir(library.user_dir) == ["mine.batseg"]
    assert Path(library.user_dir, "mine.batseg").read_bytes() == b"another program's file"


def _segmentation(mrml, volume):
    shape = tuple(reversed(volume.GetImageData().GetDimensions()))
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 12:22, 14:24] = 2
    return create_tumour_segmentation(mrml.scene, volume, labels, "scan BATseg")


def test_a_killed_exports_temporary_dataset_json_is_removed_by_the_next(mrml, volume, tmp_path):
    node = _segmentation(mrml, volume)
    export.export_case(node, volume, str(tmp_path))
    listed = (tmp_path / "dataset.json").read_bytes()
    left = _killed_writers_temporary(tmp_path, "dataset.json")
    live = tmp_path / f".dataset.json.abcdefgh.{os.getpid()}-{atomic_files._host_tag()}.part"
    live.write_text("being written")  # a writer still running: left alone
    case = export.export_case(node, volume, str(tmp_path))
    assert case.case_id == "batseg_0002" and not left.exists() and live.exists()
    assert json.loads((tmp_path / "dataset.json").read_text())["numTraining"] == 2
    assert json.loads(listed)["numTraining"] == 1
    hidden = [p.name for p in tmp_path.rglob(".*") if p != live]
    assert hidden == [], "a temporary of this export was left behind"


def test_the_provenance_record_is_staged_without_a_temporary_left(mrml, volume, tmp_path):
    case = export.export_case(_segmentation(mrml, volume), volume, str(tmp_path))
    record = Path(case.files["provenance"]).read_text()
    assert record == json.dumps(case.provenance, indent=2) + "\n"  # the bytes the export always wrote
    assert not [p.name for p in tmp_path.rglob(".*")]


def test_a_quarantine_note_killed_while_written_is_cleared_when_written_again(tmp_path):
    folder = tmp_path / export.QUARANTINE / "batseg_0001"
    folder.mkdir(parents=True)
    left = _killed_writers_temporary(folder, "WHY.txt")
    export._append_note(str(folder), "first reason")
    export._append_note(str(folder), "second reason")
    assert sorted(p.name for p in folder.iterdir()) == ["WHY.txt"] and not left.exists()
    note = (folder / "WHY.txt").read_text()
    assert note.index("first reason") < note.index("second reason")
