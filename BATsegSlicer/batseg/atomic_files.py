"""Atomic writing of output files: a temporary file in the target folder, then a rename.

A reader (the Slicer module, a script polling the folder) never sees a half-written file, and
an interrupted run leaves the previous file intact. An existing file is replaced only when the
caller says the user asked for it (`overwrite=True`, the `--overwrite` option).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from batseg.errors import BATsegError


def check_can_write(path: str | os.PathLike, overwrite: bool) -> Path:
    """The path as a Path; a one-line error if it exists and overwriting was not asked for."""
    path = Path(path)
    if path.is_dir():
        raise BATsegError(f"output {path} is a folder: give a file name")
    if path.exists() and not overwrite:
        raise BATsegError(f"output {path} already exists: choose another name or pass --overwrite")
    return path


def write_atomically(path: str | os.PathLike, writer: Callable[[Path], None], overwrite: bool) -> Path:
    """Call `writer(temporary_path)`, then rename the temporary file onto `path`.

    The temporary file lives in the same folder (so the rename is atomic on one file system);
    it is removed if `writer` fails. Missing parent folders are created.
    """
    path = check_can_write(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        writer(Path(temporary))
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomically(path: str | os.PathLike, text: str, overwrite: bool) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite)
