"""Temporary run folders, and what a crashed Slicer leaves of them.

A run's child process leads its own process session (process.py: so that Cancel can kill the
whole tree), so it does not die with Slicer: if Slicer crashes, the child goes on computing
(on the GPU too) and its temporary folder stays. Every run therefore gets a folder
`batseg-run-PID-HOST-RANDOM` in the system's temporary folder, with `owner.json` naming the
Slicer process (pid and start time) and, once started, the child (pid and start time). At
start-up the module calls `clean_stale_run_folders`: for each such folder of this computer
whose Slicer is gone, a child that still runs is killed with its process tree, and the
folder is removed.

A process counts as "the same" only if its pid and its start time both match what was recorded,
so a pid the system has since given to another program is never killed (without psutil, which
comes with the dependencies, no child is killed and only folders of owners that are provably
gone are removed). Folders of another computer (a shared temporary folder) and of a Slicer that
still runs are left alone. Folders of older BATseg versions (`batseg-run-RANDOM`, no owner
record) are removed once untouched for `LEGACY_STALE_AFTER_S`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from typing import Callable

# The standard library only: this module still loads at start-up in a Slicer without the engine's dependencies.
from batseg.atomic_files import write_text_atomically

try:
    import psutil
except ImportError:  # installed with the dependencies; a fresh Slicer may not have it yet
    psutil = None

PREFIX = "batseg-run-"
OWNER_FILE = "owner.json"
FOLDER_NAME = re.compile(r"batseg-run-(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{8})-[A-Za-z0-9_]+")
LEGACY_NAME = re.compile(r"batseg-run-[A-Za-z0-9_]{8}")
LEGACY_STALE_AFTER_S = 24 * 3600.0
_START_TIME_TOLERANCE_S = 1.0


def host_tag() -> str:
    """A short, stable tag of this computer's name (no name on disk)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if unknown or gone."""
    if psutil is None:
        return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def new_run_folder(base: str | None = None) -> str:
    """A new private run folder owned by this process."""
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{host_tag()}-", dir=base)
    _write_owner(folder, {"pid": os.getpid(), "started": start_time(os.getpid())})
    return folder


def record_child(folder: str, pid: int | None) -> None:
    """Note the child process working in `folder` (so that a later start-up can stop it)."""
    if pid is None:
        return
    owner = _read_owner(folder) or {"pid": os.getpid(), "started": start_time(os.getpid())}
    owner.update({"child_pid": int(pid), "child_started": start_time(pid)})
    _write_owner(folder, owner)


def clean_stale_run_folders(base: str | None = None, kill: Callable[[int], None] | None = None) -> list[str]:
    """Stop the children of dead owners and remove their run folders; returns one line per folder."""
    if kill is None:
        from BATsegSlicerLib.process import kill_process_tree as kill
    base = base or tempfile.gettempdir()
    notes = []
    for name in _list(base):
        folder = os.path.join(base, name)
        if not os.path.isdir(folder):
            continue
        match = FOLDER_NAME.fullmatch(name)
        if match is None:
            if LEGACY_NAME.fullmatch(name) and _untouched_for(folder) > LEGACY_STALE_AFTER_S:
                shutil.rmtree(folder, ignore_errors=True)
                notes.append(f"removed {folder} (left by an older BATseg)")
            continue
        if match.group("host") != host_tag():
            continue  # another computer's run on a shared folder
        owner = _read_owner(folder) or {"pid": int(match.group("pid"))}
        if not _gone(owner.get("pid"), owner.get("started")):
            continue
        child = owner.get("child_pid")
        if child and owner.get("child_started") and _same_process(child, owner["child_started"]):
            kill(int(child))
            notes.append(f"stopped process {child}, left running by a Slicer that ended, and removed {folder}")
        else:
            notes.append(f"removed {folder} (its Slicer ended during a run)")
        shutil.rmtree(folder, ignore_errors=True)
    return notes


def _same_process(pid, started) -> bool:
    """True if `pid` runs and started at `started` (the process recorded, not a reuse of its pid)."""
    now = start_time(int(pid))
    return now is not None and started is not None and abs(now - float(started)) <= _START_TIME_TOLERANCE_S


def _gone(pid, started) -> bool:
    """True if the recorded owner process provably no longer runs."""
    if pid is None:
        return False
    pid = int(pid)
    if pid == os.getpid():
        return False
    if psutil is not None:
        if not psutil.pid_exists(pid):
            return True
        return started is not None and not _same_process(pid, started)  # the pid now names another program
    if os.name == "nt":
        return False  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _untouched_for(folder: str) -> float:
    try:
        return time.time() - os.stat(folder).st_mtime
    except OSError:
        return 0.0


def _read_owner(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, OWNER_FILE), encoding="utf-8") as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _write_owner(folder: str, owner: dict) -> None:
    """Replace the owner record in one rename: a start-up reading it never meets half a record."""
    write_text_atomically(os.path.join(folder, OWNER_FILE), json.dumps(owner), overwrite=True)


def _list(folder: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(folder) if name.startswith(PREFIX))
    except OSError:
        return []
