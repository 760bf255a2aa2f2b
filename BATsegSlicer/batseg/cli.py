"""The `batseg` command line: one sub-command per module in `batseg.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit status. Command
modules import torch and nnU-Net only inside ``func``, so ``batseg --help`` stays instant.
A `BATsegError` is printed as one line (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from batseg import __version__
from batseg.errors import BATsegError
from batseg.progress import Progress

# Sub-commands in the order `batseg --help` lists them.
COMMANDS: tuple[str, ...] = (
    "predict",
    "benchmark",
    "evaluate",
    "train",
    "package",
    "phantom",
    "sample",
    "tune_postprocess",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="batseg",
        description="BATseg: boundary-aware spinal cord tumour segmentation (research software; "
        "the shipped model is trained on synthetic phantoms only and is not for clinical use).",
    )
    parser.add_argument("--version", action="version", version=f"batseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"batseg.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `batseg` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except BATsegError as exc:
        Progress(getattr(args, "progress", "bar")).error(str(exc))
        return 2
    except OSError as exc:
        # A full disk or a folder that became read-only during a long run: say which file, no traceback.
        Progress(getattr(args, "progress", "bar")).error(_os_error_message(exc))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("batseg: interrupted\n")
        return 130


def _os_error_message(exc: OSError) -> str:
    """One line for a file-system error: the file, the reason, what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    return f"cannot access{where}: {reason}; check the path, its permissions and the free disk space"


if __name__ == "__main__":
    sys.exit(main())
