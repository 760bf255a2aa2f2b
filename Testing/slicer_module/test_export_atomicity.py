"""Export for retraining under kill -9: a case appears atomically, the next export repairs.

Kills are real: the export runs in a forked child that sends itself SIGKILL just before its
N-th file operation (a case file written half-way, a rename, a hard link, a removal), for every
N until the export finishes first. After each kill the folder must still be a dataset that
nnU-Net and `batseg train` accept, holding only complete cases; the next export (in this
process) must finish what the kill left, remove the dead staging folder and add its own case.

Other tests leave on disk the states an older BATseg left behind (an image without its label
and a staging folder without owner, a case without segmentation, AI output and provenance, a
dataset.json without a case listing) and check the repair, also when the repair itself is
killed at every step; that a live export's staging folder is never touched; and that the
engine's reader refuses a case without its label by name.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from batseg import atomic_files
from batseg.errors import BATsegError
from batseg.training.datasets import read_raw_dataset
from BATsegSlicerLib import export
from BATsegSlicerLib.ai_output import remember_ai_output
from BATsegSlicerLib.segmentation import create_tumour_segmentation

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills are simulated in forked processes")

MANIFEST = {"name": "batseg-test", "version": "1.2.3", "title": "Test model", "weights_sha256": "ab" * 32}
KILLABLE_OS_CALLS = ("link", "remove", "unlink", "rename", "replace", "rmdir")
WRITERS = ("write_volume", "write_segmentation")
MAX_STEPS = 120  # far more file operations than one export makes: the loops end long before


def _segmentation(mrml, volume, value: int = 2):
    """A segmentation as a BATseg run leaves it (with the AI output remembered for export)."""
    shape = tuple(reversed(volume.GetImageData().GetDimensions()))
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 12:22, 14:24] = value
    node = create_tumour_segmentation(mrml.scene, volume, labels, "scan BATseg")
    remember_ai_output(node, volume, labels, MANIFEST)
    return node


def _tree(folder: Path, staging: bool = True) -> dict[str, bytes]:
    """Relative path -> content of every file (those in staging folders and writers' temporary
    files too, unless `staging` is False)."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return {k: v for k, v in files.items() if staging or not (k.startswith(export.STAGING_PREFIX) or _temporary(k))}


def _temporary(relative: str) -> bool:
    """A file `batseg.atomic_files` writes before its rename (dataset.json, WHY.txt)."""
    return atomic_files._PART_NAME.fullmatch(Path(relative).name) is not None


def _case_files(folder: Path) -> dict[str, set[str]]:
    """batseg case id -> its files (relative paths) in the case folders."""
    found: dict[str, set[str]] = {}
    for sub in export.FOLDERS:
        for path in sorted((folder / sub).glob("batseg_*")):
            case_id = export.CASE_PATTERN.match(path.name).group(0)
            found.setdefault(case_id, set()).add(f"{sub}/{path.name}")
    return found


def _nnunet_cases(folder: Path) -> set[str]:
    """The cases nnU-Net trains on, checked as verify_dataset_integrity checks the listing (the
    full check, which reads every image in worker processes, runs once per test instead)."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    dataset_json = json.loads((folder / "dataset.json").read_text())
    cases = get_filenames_of_train_images_and_targets(str(folder), dataset_json)
    assert len(cases) == dataset_json["numTraining"], "nnU-Net: expected numTraining cases"
    for case_id, files in cases.items():
        assert all(os.path.isfile(image) for image in files["images"]), case_id
        assert os.path.isfile(files["label"]), case_id
    return set(cases)


def _assert_valid_dataset(folder: Path, scan: bool = True) -> set[str]:
    """nnU-Net and `batseg train` see the same complete cases; returns their ids. With `scan`,
    also no image lacks its label for a reader that scans imagesTr instead of following
    dataset.json (not so while an older BATseg's leftover is being repaired)."""
    cases = _nnunet_cases(folder)
    assert {case.identifier for case in read_raw_dataset(folder).cases} == cases
    for image in (folder / "imagesTr").glob("batseg_*_0000.nii.gz") if scan else ():
        assert (folder / "labelsTr" / image.name.replace("_0000", "")).is_file(), image.name
    files = _case_files(folder)
    for case_id in cases:
        with_ai = "ai_output" in json.loads((folder / "provenanceTr" / f"{case_id}.json").read_text())["files"]
        assert files[case_id] == set(export.case_files(case_id, with_ai).values()), case_id
    return cases


def _assert_repaired(folder: Path) -> set[str]:
    """After a successful export: a valid dataset, every case file in the case folders belongs
    to a listed case, no staging folder is left."""
    cases = _assert_valid_dataset(folder)
    assert set(_case_files(folder)) == cases, "files of an unlisted case were left in the case folders"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".batseg-export-")]
    assert not [p.name for p in folder.rglob(".*") if _temporary(p.name)], "a writer's temporary file was left"
    return cases


def _arm_kill(step: int) -> None:
    """In the child: SIGKILL before the `step`-th file operation (a case file is left half-written)."""
    counter = itertools.count(1)

    def before(operation):
        def wrapped(*args, **kwargs):
            if next(counter) == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return operation(*args, **kwargs)
        return wrapped

    def half_way(writer):
        def wrapped(node, path):
            writer(node, path)
            if next(counter) == step:
                with open(path, "r+b") as handle:
                    handle.truncate(os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        return wrapped

    for name in KILLABLE_OS_CALLS:
        setattr(os, name, before(getattr(os, name)))
    for name in WRITERS:
        setattr(export, name, half_way(getattr(export, name)))


def _export_killed_at(step: int, node, volume, folder: Path) -> bool:
    """Export in a forked child killed at `step`; False when the export finished first."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 3
        try:
            _arm_kill(step)
            export.export_case(node, volume, str(folder))
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, f"the export failed at step {step} without being killed"
    return False


@needs_fork
def test_kill_at_every_step_leaves_a_valid_dataset_and_the_next_export_repairs(mrml, volume, tmp_path):
    node = _segmentation(mrml, volume)
    template = tmp_path / "template"
    export.export_case(node, volume, str(template))
    first = {k: v for k, v in _tree(template).items() if k != "dataset.json"}
    outcomes = []
    for step in range(1, MAX_STEPS):
        folder = tmp_path / f"step{step}"
        shutil.copytree(template, folder)
        if not _export_killed_at(step, node, volume, folder):
            assert _assert_repaired(folder) == {"batseg_0001", "batseg_0002"}
            break
        # Killed: still a dataset nnU-Net accepts, with the first case only or both complete.
        listed = _assert_valid_dataset(folder)
        assert listed in ({"batseg_0001"}, {"batseg_0001", "batseg_0002"}), (step, listed)
        reached = "batseg_0002" in _case_files(folder)  # some of its files were already in place

        case = export.export_case(node, volume, str(folder))
        cases = _assert_repaired(folder)
        assert not (folder / export.QUARANTINE).exists(), "a killed export of this version is always finished"
        finished = (case.case_id, cases) == ("batseg_0003", {"batseg_0001", "batseg_0002", "batseg_0003"})
        if finished and "batseg_0002" not in listed:
            assert any(note.startswith("batseg_0002: ") for note in case.notes), (step, case.notes)
        if not finished:  # killed while writing its files: removed, and its id is free again
            assert not reached and (case.case_id, cases) == ("batseg_0002", {"batseg_0001", "batseg_0002"}), step
            assert any("left only partial copies" in note for note in case.notes), (step, case.notes)
        for name, content in first.items():
            assert (folder / name).read_bytes() == content, f"{name} changed (kill at step {step})"
        outcomes.append("reached" if reached else "finished" if finished else "removed")
    else:
        pytest.fail("the export never finished")
    assert {"reached", "finished", "removed"} <= set(outcomes) and len(outcomes) > 15, outcomes

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(folder), num_processes=1)


def _older_batseg_leftovers(mrml, volume, folder: Path) -> dict[str, bytes]:
    """Three exported cases, then what an older BATseg (image moved first, dataset.json without a
    listing) left when killed: batseg_0002 with only its image in place, the rest in a staging
    folder without owner, untouched for two hours; batseg_0003 with image and label but no
    segmentation, AI output or provenance (its staging folder was deleted by hand). Returns
    the bytes of the files that must be set aside."""
    for value in (1, 2, 3):
        export.export_case(_segmentation(mrml, volume, value), volume, str(folder))
    legacy = folder / ".batseg-export-k3x_9q2a"
    for rel in ("labelsTr/batseg_0002.nii.gz", "segTr/batseg_0002.seg.nrrd", "aiTr/batseg_0002.nii.gz",
                "provenanceTr/batseg_0002.json"):
        (legacy / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).rename(legacy / rel)
    two_hours_ago = time.time() - 7200
    os.utime(legacy, (two_hours_ago, two_hours_ago))
    for rel in ("segTr/batseg_0003.seg.nrrd", "aiTr/batseg_0003.nii.gz", "provenanceTr/batseg_0003.json"):
        (folder / rel).unlink()
    dataset = json.loads((folder / "dataset.json").read_text())
    del dataset["dataset"]
    dataset["numTraining"] = 1  # as the older BATseg counted: one label file per complete case
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return {rel: (folder / rel).read_bytes()
            for rel in ("imagesTr/batseg_0003_0000.nii.gz", "labelsTr/batseg_0003.nii.gz")}


def _assert_quarantined(folder: Path, set_aside: dict[str, bytes]) -> None:
    quarantine = folder / export.QUARANTINE / "batseg_0003"
    assert {rel: (quarantine / rel).read_bytes() for rel in set_aside} == set_aside
    assert sorted(p.name for p in quarantine.rglob("*") if p.is_file()) == [
        "WHY.txt", "batseg_0003.nii.gz", "batseg_0003_0000.nii.gz"]
    assert "missing: segTr/batseg_0003.seg.nrrd" in (quarantine / "WHY.txt").read_text()


def test_older_exports_leftovers_are_finished_or_quarantined(mrml, volume, tmp_path):
    set_aside = _older_batseg_leftovers(mrml, volume, tmp_path)
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    with pytest.raises(AssertionError, match=r"expected number of training cases \(1\). Found 3"):
        verify_dataset_integrity(str(tmp_path), num_processes=1)  # the finding, reproduced
    with pytest.raises(BATsegError, match=r"case batseg_0002 is incomplete: its label file .* is missing"):
        read_raw_dataset(tmp_path)  # the engine refuses to train on it, naming the case

    case = export.export_case(_segmentation(mrml, volume, 4), volume, str(tmp_path))
    assert case.case_id == "batseg_0004"
    assert _assert_repaired(tmp_path) == {"batseg_0001", "batseg_0002", "batseg_0004"}
    _assert_quarantined(tmp_path, set_aside)
    assert any(n.startswith("batseg_0002: finished an export") for n in case.notes), case.notes
    assert any(n.startswith("batseg_0003: moved 2 file(s) to quarantine/batseg_0003/") for n in case.notes)
    verify_dataset_integrity(str(tmp_path), num_processes=1)
    assert export.next_case_id(str(tmp_path)) == "batseg_0005"  # quarantined ids are never reused


@needs_fork
def test_a_repair_killed_at_every_step_is_completed_by_the_next_export(mrml, volume, tmp_path):
    template = tmp_path / "template"
    set_aside = _older_batseg_leftovers(mrml, volume, template)
    before = _tree(template, staging=False)
    node = _segmentation(mrml, volume, 4)
    for step in range(1, MAX_STEPS):
        folder = tmp_path / f"step{step}"
        shutil.copytree(template, folder)
        for staging in folder.glob(".batseg-export-*"):  # copytree kept the content, not the age
            os.utime(staging, (time.time() - 7200,) * 2)
        finished = not _export_killed_at(step, node, volume, folder)
        if not finished and _tree(folder, staging=False) != before:  # from the first rename on: valid
            assert {"batseg_0001"} <= _assert_valid_dataset(folder, scan=False), step
        export.export_case(node, volume, str(folder))
        assert {"batseg_0001", "batseg_0002", "batseg_0004"} <= _assert_repaired(folder), step
        _assert_quarantined(folder, set_aside)
        if finished:
            assert step > 30, "the repair was never killed half-way"  # an export alone makes ~22 file operations
            break
    else:
        pytest.fail("the export never finished")


def test_a_live_exports_staging_folder_and_case_are_left_alone(mrml, volume, tmp_path):
    node = _segmentation(mrml, volume)
    export.export_case(node, volume, str(tmp_path))
    export.export_case(node, volume, str(tmp_path))
    # Another process exporting batseg_0002 right now: all moved but its image.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        staging = tmp_path / f".batseg-export-{live.pid}-{export._host_tag()}-abcd1234"
        (staging / "imagesTr").mkdir(parents=True)
        (tmp_path / "imagesTr" / "batseg_0002_0000.nii.gz").rename(staging / "imagesTr" / "batseg_0002_0000.nii.gz")
        in_progress = _tree(staging) | {k: v for k, v in _tree(tmp_path).items() if "batseg_0002" in k}
        case = export.export_case(node, volume, str(tmp_path))
        assert case.case_id == "batseg_0003" and case.notes == []
        assert _assert_valid_dataset(tmp_path) == {"batseg_0001", "batseg_0003"}
        assert _tree(staging) | {k: v for k, v in _tree(tmp_path).items() if "batseg_0002" in k} == in_progress
    finally:
        live.kill()
        live.wait()
    # Its process is gone (killed): the next export finishes its case.
    case = export.export_case(node, volume, str(tmp_path))
    assert case.case_id == "batseg_0004"
    assert _assert_repaired(tmp_path) == {"batseg_0001", "batseg_0002", "batseg_0003", "batseg_0004"}


def test_staging_folders_are_judged_by_owner_and_age(tmp_path):
    fresh_legacy = tmp_path / ".batseg-export-abcd1234"  # an older BATseg's, maybe still writing
    own_pid_dead = tmp_path / f".batseg-export-{os.getpid()}-{export._host_tag()}-abcd1234"  # pid reused
    other_host = tmp_path / f".batseg-export-1-{'0' * 8}-abcd1234"  # another machine's: age decides
    not_ours = tmp_path / ".batseg-export-notours"  # not the exporter's name pattern
    for folder in (fresh_legacy, own_pid_dead, other_host, not_ours):
        (folder / "imagesTr").mkdir(parents=True)
        (folder / "imagesTr" / "batseg_0001_0000.nii.gz").write_bytes(b"partial")
    export.repair_export_folder(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh_legacy.name, other_host.name, not_ours.name])
    assert not (tmp_path / "dataset.json").exists()  # nothing complete: no dataset yet
    stale = time.time() - export.STALE_AFTER_S - 60
    for folder in (fresh_legacy, other_host, not_ours):
        os.utime(folder, (stale, stale))
    notes = export.repair_export_folder(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [not_ours.name]
    assert len(notes) == 2 and all("left only partial copies" in note for note in notes), notes


def test_a_kill_between_hard_link_and_removal_is_finished(tmp_path):
    """The file is in place and still in the staging folder (same inode): only the copy goes."""
    staging = tmp_path / f".batseg-export-1-{export._host_tag()}-abcd1234"
    for rel in export.case_files("batseg_0001", False).values():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(json.dumps({"files": {}}) if rel.endswith(".json") else rel)
    (tmp_path / "labelsTr").mkdir()
    os.link(staging / "labelsTr" / "batseg_0001.nii.gz", tmp_path / "labelsTr" / "batseg_0001.nii.gz")
    old = time.time() - export.STALE_AFTER_S - 60
    os.utime(staging, (old, old))
    notes = export.repair_export_folder(str(tmp_path))
    assert notes == [f"batseg_0001: finished an export that was interrupted ({staging.name})"]
    assert set(_case_files(tmp_path)["batseg_0001"]) == set(export.case_files("batseg_0001", False).values())
    assert json.loads((tmp_path / "dataset.json").read_text())["dataset"] == {
        "batseg_0001": {"images": ["imagesTr/batseg_0001_0000.nii.gz"], "label": "labelsTr/batseg_0001.nii.gz"}}


def test_reader_refuses_an_image_without_label_naming_the_case(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr" / "case_7_0000.nii.gz").write_bytes(b"")
    (tmp_path / "dataset.json").write_text(json.dumps(export.dataset_description(1)))
    with pytest.raises(BATsegError, match=r"^case case_7 is incomplete: its label file .*case_7\.nii\.gz is missing"):
        read_raw_dataset(tmp_path)


def test_a_failed_repair_becomes_a_note_and_the_dataset_stays_valid(tmp_path, monkeypatch):
    """A file the export may not move (another user's) is left in place, unlisted; nothing fails."""
    for rel in ("imagesTr/batseg_0001_0000.nii.gz", "imagesTr/other_0000.nii.gz", "labelsTr/other.nii.gz"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"voxels")

    def refused(source, target):
        raise PermissionError(13, "Permission denied", source)

    monkeypatch.setattr(export, "move_no_clobber", refused)
    notes = export.repair_export_folder(str(tmp_path))
    assert len(notes) == 1 and notes[0].startswith("could not repair batseg_0001 ([Errno 13] Permission denied"), notes
    assert (tmp_path / "imagesTr" / "batseg_0001_0000.nii.gz").is_file()
    assert json.loads((tmp_path / "dataset.json").read_text())["dataset"] == {
        "other": {"images": ["imagesTr/other_0000.nii.gz"], "label": "labelsTr/other.nii.gz"}}
