"""nnU-Net's folders and worker settings for this process and its children.

nnU-Net v2 reads `nnUNet_raw`, `nnUNet_preprocessed` and `nnUNet_results` from the
environment each time it needs them (2.8's lazy `_EnvPath`), so setting them in
`os.environ` here reaches nnU-Net in this process, in its data-augmentation workers and in
DDP child processes; the user never has to export anything.

Decisions:
- One work dir holds all three folders (`raw/`, `preprocessed/`, `results/`); the default is
  `~/.cache/batseg/work` (or `$BATSEG_WORKDIR`) so a resumed run finds its checkpoints.
- Worker counts: nnU-Net's defaults assume a GPU server (12 augmentation workers, 8 export
  processes). Unless the user already set them, augmentation workers default to the number
  of CPU cores minus one (at least 1 on 2+ cores, so augmentation overlaps the step; 0, the
  main process, on a single core; at most 12) and export processes to min(cores, 4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from batseg.errors import BATsegError

DEFAULT_WORKDIR_ENV = "BATSEG_WORKDIR"


@dataclass(frozen=True)
class WorkDir:
    """The three nnU-Net folders inside one work dir."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "results"


def default_workdir() -> Path:
    """`$BATSEG_WORKDIR`, else `~/.cache/batseg/work`."""
    env = os.environ.get(DEFAULT_WORKDIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "batseg" / "work"


def activate(root: str | os.PathLike[str] | None = None) -> WorkDir:
    """Create the work dir's folders and point nnU-Net's environment variables at them."""
    workdir = WorkDir(Path(root).expanduser().resolve() if root else default_workdir().resolve())
    try:
        for folder in (workdir.raw, workdir.preprocessed, workdir.results):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BATsegError(f"cannot create the work dir {workdir.root} ({exc.strerror}); pass --workdir DIR") from None
    os.environ["nnUNet_raw"] = str(workdir.raw)
    os.environ["nnUNet_preprocessed"] = str(workdir.preprocessed)
    os.environ["nnUNet_results"] = str(workdir.results)
    set_worker_defaults()
    return workdir


def set_worker_defaults(cpu_count: int | None = None) -> None:
    """Augmentation / export process counts fitted to this machine, unless already set.

    Call it before importing nnunetv2: `nnunetv2.configuration` reads `nnUNet_def_n_proc` once,
    at import time (the export pool of nnU-Net's final validation uses that value).
    """
    cores = cpu_count or os.cpu_count() or 1
    os.environ.setdefault("nnUNet_n_proc_DA", str(min(max(cores - 1, 1 if cores >= 2 else 0), 12)))
    os.environ.setdefault("nnUNet_def_n_proc", str(max(1, min(cores, 4))))
