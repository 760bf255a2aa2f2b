"""Atomic writing of output files: a temporary file in the target folder, then a rename.

A reader (the Slicer module, a script polling the folder) never sees a half-written file, and
an interrupted run leaves the previous file intact. An existing file is replaced only when the
caller says the user asked for it (`overwrite=True`, the `--overwrite` option).

Several outputs of one result (labels, probabilities, report) are written all or nothing
(`write_all_or_nothing`): every file is first written to its temporary name, and only when all
of them are complete are they renamed; a failure (disk full) leaves the previous files as they
were, not a mix of old and new or a deleted set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from batseg.errors import BATsegError

Writer = Callable[[Path], None]


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
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part{suffix}")
    os.close(handle)
    try:
        writer(Path(temporary))
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def write_atomically(path: str | os.PathLike, writer: Writer, overwrite: bool, suffix: str = "") -> Path:
    """Call `writer(temporary_path)`, then rename the temporary file onto `path`.

    The temporary file lives in the same folder, so the rename is atomic on one file system.
    """
    temporary = stage_file(path, writer, overwrite, suffix)
    os.replace(temporary, path)
    return Path(path)


def write_all_or_nothing(files: Iterable[tuple[Path, Writer, str]], overwrite: bool) -> list[Path]:
    """Write several (path, writer, suffix) files so that either all are replaced or none is."""
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
    for temporary, path in staged:
        os.replace(temporary, path)
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
