"""Atomic writing of output files: a temporary file in the target folder, then a rename.

A reader (the Slicer module, a script polling the folder) never sees a half-written file, and
an interrupted run leaves the previous file intact. An existing file is replaced only when the
caller says the user asked for it (`overwrite=True`, the `--overwrite` option).

Several outputs of one result (labels, probabilities, report) are written all or nothing
(`write_all_or_nothing`): every file is first written to its temporary name, and only when all
of them are complete are they renamed; a failure (disk full) leaves the previous files as they
were, not a mix of old and new or a deleted set.

A folder made of several files (an imported training dataset) is written the same way
(`write_folder_atomically`): filled under a temporary name beside it, then renamed.

Temporary files are named ``.NAME.RANDOM.PID-HOST.part[SUFFIX]`` (hidden, beside NAME), and so
are temporary folders (no suffix). Any failure, the final rename included, removes the
temporary. A run killed while writing (SIGKILL; SIGTERM and Ctrl-C unwind and remove them)
leaves such files behind; `remove_stale_parts` removes, at the start of a later run, those whose
writer is provably dead (same host, no such process) or that have not changed for
`STALE_AFTER_S` seconds; a folder only when its writer is provably dead, since it is filled
inside its subfolders and its own age says nothing. A live writer's file is never touched, so
concurrent runs into one folder stay safe, and nothing outside that exact pattern is ever removed.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from batseg.errors import BATsegError

Writer = Callable[[Path], None]
Commit = Callable[[Path, Path], None]  # (temporary, target): os.replace, or a rename that never replaces

# A temporary file untouched this long belongs to no live writer: writing one output takes
# seconds, and a staged file waits only for the other outputs of its case.
STALE_AFTER_S = 3600.0
# `.NAME.RANDOM.PID-HOST.part[SUFFIX]`: RANDOM is tempfile's 8 characters, HOST a hash of the host name.
_PART_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{8})\.part(\.[A-Za-z0-9]{1,8}){0,2}")
# Temporary files of batseg <= 0.6.0 (no owner tag, suffix none or an image's): removed by age only.
_LEGACY_PART_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.part(\.nii\.gz|\.nii|\.nrrd|\.nhdr|\.mha|\.mhd)?")


def check_can_write(path: str | os.PathLike, overwrite: bool) -> Path:
    """The path as a Path; a one-line error if it exists (without overwrite) or cannot be written.

    Checked before the work that produces the file, so a read-only folder fails in a second
    instead of after a prediction or a training run.
    """
    path = Path(path)
    if path.is_dir():
        raise BATsegError(f"output {path} is a folder: give a file name")
    if path.exists() and not overwrite:
        raise BATsegError(f"output {path} already exists: choose another name or pass --overwrite")
    check_writable_folder(path.parent)
    return path


def check_writable_folder(folder: str | os.PathLike) -> None:
    """BATsegError unless files can be created in `folder` (or in the folder that would hold it).

    The nearest existing ancestor is checked, since missing folders are created on writing;
    nothing is created here.
    """
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BATsegError(f"cannot write into {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BATsegError(f"cannot write into {folder}: no write permission on {existing}; choose another output")


def stage_file(path: str | os.PathLike, writer: Writer, overwrite: bool, suffix: str = "") -> Path:
    """Write `path`'s content to a temporary file beside it; returns the temporary path.

    `suffix` ends the temporary name (image writers choose the format by extension). The
    temporary file is removed if `writer` fails. Missing parent folders are created.
    """
    path = check_can_write(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{_owner_tag()}.part{suffix}")
    os.close(handle)
    try:
        _write_checked(path, Path(temporary), writer)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _write_checked(path: Path, temporary: Path, writer: Writer) -> None:
    """`writer(temporary)`; a full disk becomes an OSError naming `path`, the file the user asked for.

    Python's write errors carry no file name, ITK's NRRD writer raises a RuntimeError, and ITK's
    NIfTI writer reports nothing at all and leaves a truncated file: a file system that had free
    space before the write and has none after it is therefore taken as a failed write. (One
    that reports no free space even before, as some network file systems do, is not judged.)
    """
    free_before = _free_blocks(temporary.parent)
    try:
        writer(temporary)
    except OSError as exc:
        if exc.filename is None or exc.filename == str(temporary):  # the user knows `path`, not our temporary
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    except Exception:
        if free_before and _free_blocks(temporary.parent) == 0:
            raise _disk_full_error(path) from None
        raise
    if free_before and _free_blocks(temporary.parent) == 0:
        raise _disk_full_error(path)


def _free_blocks(folder: Path) -> int | None:
    """Blocks this process may still write on the file system of `folder` (None: cannot tell)."""
    try:
        stats = os.statvfs(folder)
    except (AttributeError, OSError):  # Windows has no statvfs
        return None
    # root may write into the blocks reserved for it; everyone else stops at f_bavail.
    return stats.f_bfree if os.geteuid() == 0 else stats.f_bavail


def _disk_full_error(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@functools.lru_cache(maxsize=None)
def _host_tag() -> str:
    """8 hex digits naming this machine (output folders may be shared between machines)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _owner_tag() -> str:
    """PID-HOST of this process, written into its temporary file names."""
    return f"{os.getpid()}-{_host_tag()}"


def _writer_alive(pid: int, host: str) -> bool:
    """False only when the writer is provably gone: on this host, with no process of that id."""
    if host != _host_tag() or os.name == "nt" or pid == os.getpid():
        # Another machine's or this process's own file; on Windows os.kill(pid, 0) would kill.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # a process of another user (or an id the kernel cannot take): keep it
    return True


def is_stale_part(path: Path, now: float | None = None) -> bool:
    """True for a temporary file of this engine whose writer is dead (see the module docstring)."""
    owned = _PART_NAME.fullmatch(path.name)
    if owned is None and _LEGACY_PART_NAME.fullmatch(path.name) is None:
        return False
    try:
        if path.is_symlink():
            return False
        if path.is_dir():  # its writer fills its subfolders: the folder's own age tells nothing
            return owned is not None and not _writer_alive(int(owned["pid"]), owned["host"])
        if not path.is_file():
            return False
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    return owned is not None and not _writer_alive(int(owned["pid"]), owned["host"])


def remove_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of earlier, killed runs directly inside `folder`; returns them.

    Called by each command at its start for the folders it writes into. Files that cannot be
    removed (another user's) are left alone: they are hidden and harmless.
    """
    folder = Path(folder)
    try:
        entries = [entry for entry in folder.iterdir() if entry.name.startswith(".")]
    except OSError:
        return []
    removed = []
    for entry in entries:
        if is_stale_part(entry):
            try:
                _remove(entry)
            except OSError:
                continue
            removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    """Remove a temporary file, or a temporary folder with everything in it (links are not followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def remove_stale_parts_beside(*files: str | os.PathLike | None) -> list[Path]:
    """`remove_stale_parts` for the folder of each given output file (None: not asked for)."""
    folders = {Path(f).expanduser().absolute().parent for f in files if f}
    return [path for folder in sorted(folders) for path in remove_stale_parts(folder)]


def write_atomically(
    path: str | os.PathLike, writer: Writer, overwrite: bool, suffix: str = "", commit: Commit | None = None
) -> Path:
    """Call `writer(temporary_path)`, then rename the temporary file onto `path`.

    The temporary file lives in the same folder, so the rename is atomic on one file system.
    `commit` does the rename (default `os.replace`; a caller that must never replace a file
    passes its own); the temporary file is removed if it fails.
    """
    temporary = stage_file(path, writer, overwrite, suffix)
    _commit_or_remove(temporary, Path(path), commit)
    return Path(path)


def _commit_or_remove(temporary: Path, path: Path, commit: Commit | None = None) -> None:
    """`commit(temporary, path)`; the temporary file is removed if that fails (a folder now at
    `path`, a file that must not be replaced)."""
    try:
        (commit or os.replace)(temporary, path)  # looked up now: tests stand in for os.replace
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_folder_atomically(path: str | os.PathLike, writer: Writer) -> Path:
    """Call `writer(temporary_folder)`, then rename the filled folder to `path`, which must not exist.

    The temporary folder (same name pattern as temporary files) is removed with all it holds if
    anything fails, so a reader never sees a half-filled folder at `path`.
    """
    path = Path(path)
    if path.exists():
        raise BATsegError(f"{path} already exists: remove it or choose another name")
    check_writable_folder(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{_owner_tag()}.part"))
    try:
        # mkdtemp creates 0700 folders; give the result the permissions a plain mkdir would.
        os.chmod(temporary, 0o777 & ~_current_umask())
        writer(temporary)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return path


def write_all_or_nothing(
    files: Iterable[tuple[Path, Writer, str]], overwrite: bool, obsolete: Iterable[Path] = ()
) -> list[Path]:
    """Write several (path, writer, suffix) files so that either all are replaced or none is.

    `obsolete` files (outputs of an earlier run that this one does not write anew, such as a
    probability map) are removed once every new file is complete and before any is renamed:
    an interruption then leaves old outputs without their extras, never new ones beside stale
    ones. They are removed only with `overwrite`.
    """
    files = list(files)
    for path, _, _ in files:
        check_can_write(path, overwrite)  # refuse before writing anything
    staged: list[tuple[Path, Path]] = []
    try:
        for path, writer, suffix in files:
            staged.append((stage_file(path, writer, overwrite, suffix), Path(path)))
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    if overwrite:
        for path in obsolete:
            Path(path).unlink(missing_ok=True)
    for index, (temporary, path) in enumerate(staged):
        try:
            os.replace(temporary, path)
        except BaseException:
            for later, _ in staged[index:]:  # the files already renamed stay: they are complete
                later.unlink(missing_ok=True)
            raise
    return [path for _, path in staged]


def _current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomically(path: str | os.PathLike, text: str, overwrite: bool) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return write_atomically(path, text_writer(text), overwrite)


def text_writer(text: str) -> Writer:
    """A writer of UTF-8 text, for `write_atomically` and `write_all_or_nothing`."""
    return lambda temporary: temporary.write_text(text, encoding="utf-8")
