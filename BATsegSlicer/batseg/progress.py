"""Progress reporting shared by every long-running command (predict, train, phantom, evaluate).

Two renderings of the same events:
- "bar": human-readable progress on stderr, for the terminal: one tqdm bar per stage, drawn as
  ``      STAGE [#####.........] DONE/TOTAL``; text lines (stage times, log lines, warnings,
  errors) are written above an open bar (`tqdm.write`), never glued to it;
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
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

JSON_PREFIX = "BATSEG "
# The bar's look (the one it had before tqdm drew it): right-aligned stage, 30 cells of "#" and ".".
BAR_FORMAT = "{desc} [{bar:30}] {n_fmt}/{total_fmt}"
# Every bar still open, whichever Progress drew it: an error (which the CLI reports through a
# Progress of its own) erases them all, so that its line is the only one left on the screen.
_OPEN_BARS: weakref.WeakSet[Any] = weakref.WeakSet()


class Progress:
    """Emits stage / progress / log events in the chosen mode ("bar", "json" or "quiet")."""

    def __init__(self, mode: str = "bar") -> None:
        if mode not in ("bar", "json", "quiet"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.timings: dict[str, float] = {}
        self._bars: dict[str, Any] = {}  # stage -> its open tqdm bar ("bar" mode)

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
                self._end_bar(name)
                self._line(f"  {name}: {seconds:.2f} s")

    def update(self, stage: str, done: int, total: int) -> None:
        """Report that `done` of `total` steps of `stage` are finished."""
        if self.mode == "json":
            self._emit({"event": "progress", "stage": stage, "done": done, "total": total})
        elif self.mode == "bar":
            self._draw(stage, done, total)

    def _draw(self, stage: str, done: int, total: int) -> None:
        """Move `stage`'s bar to `done` of `total`; a new bar when the count starts again, and the
        bar ends (its line kept) when it is full."""
        from tqdm import tqdm  # here: the Slicer module imports this file for parse_event alone

        bar = self._bars.get(stage)
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=f"{stage:>12}", file=sys.stderr, bar_format=BAR_FORMAT, ascii=".#")
            self._bars[stage] = bar
            _OPEN_BARS.add(bar)
        bar.update(min(done, total) - bar.n)
        if done >= total:
            self._end_bar(stage)

    def _end_bar(self, stage: str) -> None:
        """Close `stage`'s bar if it is open, keeping its last state on its own line."""
        bar = self._bars.pop(stage, None)
        if bar is not None:
            bar.close()

    def _line(self, text: str) -> None:
        """One line on stderr; above the open bars, which tqdm clears and draws again below it."""
        if any(not bar.disable for bar in _OPEN_BARS):  # a closed tqdm bar is disabled
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def _dismiss_bars(self) -> None:
        """Erase the open bars (an error ends the run: its line must be the only one left)."""
        for bar in list(_OPEN_BARS):
            bar.leave = False
            bar.close()
        self._bars.clear()

    def log(self, message: str) -> None:
        """A line of information for the user."""
        if self.mode == "json":
            self._emit({"event": "log", "message": message})
        elif self.mode == "bar":
            self._line(message)

    def warn(self, message: str) -> None:
        """A warning line: a log event in json mode, else one line on stderr (in every other mode)."""
        if self.mode == "json":
            self.log(f"warning: {message}")
        else:
            self._line(f"batseg: warning: {message}")

    def result(self, **fields: Any) -> None:
        """The command's final outcome (paths written, figures measured)."""
        self._emit({"event": "result", **fields})

    def error(self, message: str, **fields: Any) -> None:
        """A one-line error, also printed on stderr in every mode; `fields` join the json event."""
        self._emit({"event": "error", "message": message, **fields})
        self._dismiss_bars()
        self._line(f"batseg: error: {message}")


def parse_event(line: str) -> dict[str, Any] | None:
    """The event carried by one line of a child's stdout, or None for an ordinary log line."""
    if not line.startswith(JSON_PREFIX):
        return None
    try:
        event = json.loads(line[len(JSON_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
