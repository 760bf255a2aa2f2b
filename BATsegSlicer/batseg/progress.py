"""Progress reporting shared by every long-running command (predict, train, phantom, evaluate).

Two renderings of the same events:
- "bar": human-readable progress on stderr (tqdm-like), for the terminal;
- "json": one JSON object per line on stdout, prefixed with ``BATSEG `` so that a parent
  process (the Slicer module) can tell events from ordinary log lines.

Event kinds (the contract with BATsegSlicerLib's process runner):
  {"event": "stage", "stage": NAME, "status": "start"}
  {"event": "stage", "stage": NAME, "status": "end", "seconds": S}
  {"event": "progress", "stage": NAME, "done": I, "total": N}
  {"event": "log", "message": TEXT}
  {"event": "result", ...command-specific fields, e.g. "outputs": {...}}
  {"event": "error", "message": ONE_LINE[, "case": NAME]}  (a case of a batch names itself)
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

JSON_PREFIX = "BATSEG "


class Progress:
    """Emits stage / progress / log events in the chosen mode ("bar", "json" or "quiet")."""

    def __init__(self, mode: str = "bar") -> None:
        if mode not in ("bar", "json", "quiet"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.timings: dict[str, float] = {}

    def _emit(self, event: dict[str, Any]) -> None:
        if self.mode == "json":
            sys.stdout.write(JSON_PREFIX + json.dumps(event) + "\n")
            sys.stdout.flush()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a named stage; its duration is kept in `timings` and reported at its end."""
        self._emit({"event": "stage", "stage": name, "status": "start"})
        start = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            seconds = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            self._emit({"event": "stage", "stage": name, "status": "end", "seconds": round(seconds, 4)})
            # A failed stage prints no duration: the error line stays the only line on stderr.
            if self.mode == "bar" and not failed:
                sys.stderr.write(f"  {name}: {seconds:.2f} s\n")
                sys.stderr.flush()

    def update(self, stage: str, done: int, total: int) -> None:
        """Report that `done` of `total` steps of `stage` are finished."""
        if self.mode == "json":
            self._emit({"event": "progress", "stage": stage, "done": done, "total": total})
        elif self.mode == "bar":
            width = 30
            filled = int(width * done / max(total, 1))
            end = "\n" if done >= total else ""
            sys.stderr.write(f"\r{stage:>12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
            sys.stderr.flush()

    def log(self, message: str) -> None:
        """A line of information for the user."""
        if self.mode == "json":
            self._emit({"event": "log", "message": message})
        elif self.mode == "bar":
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    def warn(self, message: str) -> None:
        """A warning line: a log event in json mode, else one line on stderr (in every other mode)."""
        if self.mode == "json":
            self.log(f"warning: {message}")
        else:
            sys.stderr.write(f"batseg: warning: {message}\n")
            sys.stderr.flush()

    def result(self, **fields: Any) -> None:
        """The command's final outcome (paths written, figures measured)."""
        self._emit({"event": "result", **fields})

    def error(self, message: str, **fields: Any) -> None:
        """A one-line error, also printed on stderr in every mode; `fields` join the json event."""
        self._emit({"event": "error", "message": message, **fields})
        sys.stderr.write(f"batseg: error: {message}\n")
        sys.stderr.flush()


def parse_event(line: str) -> dict[str, Any] | None:
    """The event carried by one line of a child's stdout, or None for an ordinary log line."""
    if not line.startswith(JSON_PREFIX):
        return None
    try:
        event = json.loads(line[len(JSON_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
