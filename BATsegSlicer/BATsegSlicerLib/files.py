"""File moves that never replace an existing file (for model files and exported cases).

A hard link is the atomic "create only if absent" rename: it fails if the target exists. File
systems without hard links fall back to a check followed by a rename, which is safe for a
single user working in their own folder.
"""

from __future__ import annotations

import os

from batseg.errors import BATsegError


def move_no_clobber(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move `source` to `target`; raise a one-line BATsegError if `target` already exists."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise BATsegError(f"{target} already exists and is never overwritten: try again") from None
    except OSError:  # no hard links here (some network or FAT file systems)
        if os.path.exists(target):
            raise BATsegError(f"{target} already exists and is never overwritten: try again") from None
        os.replace(source, target)
        return
    os.remove(source)
