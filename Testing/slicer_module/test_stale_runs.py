"""What a crashed Slicer leaves of a run (issue 14, item 7): the child leads its own process
session, so it outlives Slicer, and its temporary folder stays. At start-up the module stops
such children (verified by pid and start time) and removes their folders; folders of a Slicer
that still runs, of another computer, or children whose pid now names another program are left
alone. A run's folder names this Slicer and its child (run_folders.py), and is removed after a
normal run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from BATsegSlicerLib import logic as logic_module
from BATsegSlicerLib import run_folders
from BATsegSlicerLib.commands import PredictOptions
from BATsegSlicerLib.jobs import JobState
from BATsegSlicerLib.logic import BATsegLogic

from slicer_test_support import fake_interpreter, processes_alive

psutil = pytest.importorskip("psutil")


@pytest.fixture
def logic(tmp_path, monkeypatch):
    wrapper = fake_interpreter(tmp_path)
    monkeypatch.setattr(logic_module, "read_manifest", lambda path: {"name": "fake", "version": "0"})
    return BATsegLogic(userModelsDir=str(tmp_path / "models"), python=wrapper)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _pretend_owner_died(folder: str) -> None:
    """Rewrite the owner record as if the Slicer that started the run had crashed."""
    path = os.path.join(folder, run_folders.OWNER_FILE)
    owner = json.loads(Path(path).read_text())
    owner.update({"pid": _dead_pid(), "started": time.time() - 600})
    Path(path).write_text(json.dumps(owner))


def test_orphaned_run_is_stopped_and_its_folder_removed_at_start_up(mrml, volume, logic, monkeypatch, tmp_path):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "sleep")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # this test's own temporary folder
    os.makedirs(tempfile.tempdir)
    job = logic.startSegmentation(volume, "model.batseg", PredictOptions())
    folder = job.process.cwd
    assert os.path.basename(folder).startswith(f"batseg-run-{os.getpid()}-")
    owner = json.loads(Path(folder, run_folders.OWNER_FILE).read_text())
    assert owner["pid"] == os.getpid() and owner["child_pid"] == job.process.pid
    grandchild = None
    deadline = time.monotonic() + 30
    while grandchild is None:
        assert time.monotonic() < deadline, job.full_log()
        job.poll()
        grandchild = next((int(line.split()[1]) for line in job.log if line.startswith("grandchild ")), None)
        time.sleep(0.05)
    base = os.path.dirname(folder)
    assert base == tempfile.tempdir
    assert run_folders.clean_stale_run_folders(base) == []  # its Slicer (this process) still runs
    _pretend_owner_died(folder)  # Slicer crashed; the child runs on
    notes = run_folders.clean_stale_run_folders(base)
    assert any(f"stopped process {job.process.pid}" in note for note in notes)
    assert not os.path.exists(folder)
    deadline = time.monotonic() + 10
    while processes_alive([job.process.pid, grandchild]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_alive([job.process.pid, grandchild]) == []
    job.cancel()  # (in a real crash nobody would; here it reaps the child)


def test_finished_run_leaves_no_folder(mrml, volume, logic, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    assert not os.path.exists(job.process.cwd)


def test_only_provably_stale_folders_are_touched(tmp_path):
    killed = []
    live = run_folders.new_run_folder(str(tmp_path))  # this process: alive
    dead = run_folders.new_run_folder(str(tmp_path))
    _pretend_owner_died(dead)
    # A child pid that now names another program (this process, with another start time): never killed.
    run_folders.record_child(dead, os.getpid())
    owner = json.loads(Path(dead, run_folders.OWNER_FILE).read_text())
    owner["child_started"] -= 3600
    Path(dead, run_folders.OWNER_FILE).write_text(json.dumps(owner))
    elsewhere = tmp_path / f"batseg-run-{_dead_pid()}-00000000-abcdefgh"  # another computer's run
    elsewhere.mkdir()
    legacy_old = tmp_path / "batseg-run-abcd_123"  # an older BATseg's folder, untouched for two days
    legacy_old.mkdir()
    os.utime(legacy_old, (time.time() - 2 * 86400,) * 2)
    legacy_new = tmp_path / "batseg-run-efgh_456"
    legacy_new.mkdir()
    unrelated = tmp_path / "batseg-other"
    unrelated.mkdir()
    notes = run_folders.clean_stale_run_folders(str(tmp_path), kill=killed.append)
    assert killed == []
    assert os.path.exists(live) and not os.path.exists(dead)
    assert elsewhere.exists() and legacy_new.exists() and unrelated.exists() and not legacy_old.exists()
    assert len(notes) == 2


def test_a_reused_owner_pid_counts_as_gone(tmp_path):
    folder = run_folders.new_run_folder(str(tmp_path))
    path = Path(folder, run_folders.OWNER_FILE)
    owner = json.loads(path.read_text())
    owner.update({"pid": os.getppid(), "started": owner["started"] - 3600})  # a live pid, another start time
    path.write_text(json.dumps(owner))
    run_folders.clean_stale_run_folders(str(tmp_path), kill=lambda pid: None)
    assert not os.path.exists(folder)
