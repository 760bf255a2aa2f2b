"""The `batseg` command line: one sub-command per module in `batseg.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit status. Command
modules import torch and nnU-Net only inside ``func``, so ``batseg --help`` stays instant.
A `BATsegError` is printed as one line (exit status 2), never as a traceback. SIGTERM (what
the Slicer module's Cancel sends first) unwinds like Ctrl-C, so temporary files are removed
and nothing is left half-written (exit status 143; 130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from typing import Iterator

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
    "average",
    "phantom",
    "sample",
    "tune_postprocess",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="batseg",
        description="BATseg: boundary-aware spinal cord tumour segmentation (research software; "
        "the shipped model is trained on synthetic data only: phantoms, and synthetic lesions painted into "
        "real healthy scans; not for clinical use).",
    )
    parser.add_argument("--version", action="version", version=f"batseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"batseg.commands.{name}").register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every `finally` and cleanup runs."""


_handler_owner: list[int] = []  # the id of the process that installed the handler


def _raise_terminated(signum: int, frame: object) -> None:
    if os.getpid() not in _handler_owner:
        # A forked worker that kept the handler (see `_default_sigterm_in_child`): die as before.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    # A second SIGTERM must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


_blocked_for_fork: list[bool] = []  # whether the fork under way blocked SIGTERM (seen by both sides)


def _block_sigterm_before_fork() -> None:
    """Hold SIGTERM back across a fork while our handler is installed (`_default_sigterm_in_child`)."""
    blocked = signal.getsignal(signal.SIGTERM) is _raise_terminated and hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _blocked_for_fork[:] = [blocked]


def _unblock_sigterm_in_parent() -> None:
    if _blocked_for_fork and _blocked_for_fork[0]:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_sigterm_in_child() -> None:
    """Give a forked worker (nnU-Net's, PyTorch's) the default SIGTERM back.

    Their parents stop them with SIGTERM, and a worker stuck on a lock it inherited from the
    fork never runs a Python-level handler: only the default action ends it. SIGTERM stays
    blocked from before the fork until the default is set: nnU-Net shuts a short-lived pool down
    at once, and a SIGTERM that reached the worker before this hook ran was otherwise dropped
    (Python runs the handler registered when it checks, which was by then the default), leaving
    the worker waiting on a lock and `batseg train` waiting for it forever.
    """
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _blocked_for_fork and _blocked_for_fork[0]:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # a pending SIGTERM now ends the worker


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(before=_block_sigterm_before_fork, after_in_parent=_unblock_sigterm_in_parent,
                         after_in_child=_default_sigterm_in_child)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in this process (the default handler would
    end it on the spot, leaving temporary files behind); forked workers keep the default.
    Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _handler_owner[:] = [os.getpid()]
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `batseg` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except Terminated:
        sys.stderr.write("batseg: terminated\n")
        return 143
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
