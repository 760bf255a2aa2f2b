"""A running engine command: its events, log, timings, outcome and one-line error.

`Job.poll()` is the only place output is consumed; it runs on the main thread (a qt.QTimer in
the Widget, `wait()` in tests and batch use), so callbacks may touch the MRML scene. The
results are loaded into the scene by `on_success` only after the child exited with status 0;
a cancelled or failed run therefore leaves the scene as it was.

Exit statuses (the engine's contract): 0 success; 2 user error, whose one-line message is the
`error` event or the last `batseg: error: ...` line on stderr; anything else is a crash, shown
with its exit status and the last line of stderr, the full log being kept in `log`.

Warnings (log events "warning: ...", the result event's "warnings", "batseg: warning: ..." on
stderr) are also collected once each in `warnings` (see job_warnings.py), so that the panel and
scripts can show them without reading the log.
"""

from __future__ import annotations

import time
import traceback
from enum import Enum
from typing import Any, Callable, Iterable

from batseg.errors import BATsegError

from BATsegSlicerLib.job_warnings import RunWarnings
from BATsegSlicerLib.process import ChildProcess, OutputLine

ERROR_PREFIX = "batseg: error: "
USER_ERROR_STATUS = 2


class JobState(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Job:
    """One child-process run of the engine, drained from the main thread."""

    def __init__(
        self,
        title: str,
        process: ChildProcess,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_success: Callable[["Job"], Any] | None = None,
        on_finished: Callable[["Job"], None] | None = None,
        cleanup: Callable[[], None] | None = None,
        shown_elsewhere: Iterable[str] = (),
    ) -> None:
        """`shown_elsewhere`: warning texts the panel always shows (the model's disclaimer),
        left out of `warnings`."""
        self.title = title
        self.process = process
        self.on_event = on_event
        self.on_success = on_success
        self.on_finished = on_finished
        self.cleanup = cleanup
        self.state = JobState.RUNNING
        self.error: str | None = None
        self.log: list[str] = []
        self.timings: dict[str, float] = {}
        self.progress: tuple[str, int, int] | None = None  # (stage, done, total)
        self.result_event: dict[str, Any] | None = None
        self._warnings = RunWarnings(shown_elsewhere)
        self.result: Any = None
        self.returncode: int | None = None
        self._error_event: str | None = None
        self._last_stderr: str = ""
        self._stderr_error: str | None = None
        self._started = time.perf_counter()
        self.total_seconds: float | None = None

    def start(self) -> "Job":
        """Start the child process."""
        self._started = time.perf_counter()
        self._add_log(f"{self.title}: started")
        self.process.start()
        return self

    @property
    def running(self) -> bool:
        return self.state is JobState.RUNNING

    @property
    def warnings(self) -> list[str]:
        """The run's warnings so far, each once, in the order first seen."""
        return list(self._warnings.messages)

    def poll(self) -> bool:
        """Consume the queued output; finish the job when the child is done. True while running."""
        if not self.running:
            return False
        for line in self.process.read_lines():
            self._handle(line)
        if self.process.finished:
            self._finish()
        return self.running

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> JobState:
        """Poll until the job ends (the `waitForCompletion` path); cancel it after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if deadline is not None and time.monotonic() > deadline:
                self._add_log(f"{self.title}: no result after {timeout:.0f} s, cancelling")
                self.cancel()
                break
            _process_gui_events()
            time.sleep(interval)
        return self.state

    def cancel(self) -> None:
        """Kill the whole process tree; the job ends as CANCELLED and nothing is loaded."""
        if not self.running:
            return
        self.process.cancel()
        for line in self.process.read_lines():
            self._handle(line)
        self.state = JobState.CANCELLED
        self._add_log(f"{self.title}: cancelled by the user")
        self._close()

    # -- output handling -------------------------------------------------------------------

    def _handle(self, line: OutputLine) -> None:
        event = line.event
        if event is None:
            self._handle_text(line)
            return
        kind = event.get("event")
        if kind == "stage":
            self._handle_stage(event)
        elif kind == "progress":
            self.progress = (str(event.get("stage", "")), int(event.get("done", 0)), int(event.get("total", 0)))
        elif kind == "log":
            message = str(event.get("message", ""))
            self._add_log(message)
            self._warnings.add_log_message(message)
        elif kind == "result":
            self.result_event = event
            self._warnings.add_result_event(event)
        elif kind == "error":
            self._error_event = str(event.get("message", "")).strip()
            self._add_log(f"error: {self._error_event}")
        if self.on_event is not None:
            self.on_event(event)

    def _handle_text(self, line: OutputLine) -> None:
        self._add_log(line.text)
        if line.stream == "stderr" and line.text.strip():
            self._last_stderr = line.text.strip()
            self._warnings.add_stderr_line(line.text)
            if line.text.startswith(ERROR_PREFIX):
                self._stderr_error = line.text[len(ERROR_PREFIX):].strip()
        if self.on_event is not None:
            self.on_event({"event": "text", "stream": line.stream, "message": line.text})

    def _handle_stage(self, event: dict[str, Any]) -> None:
        stage = str(event.get("stage", ""))
        if event.get("status") == "end":
            seconds = float(event.get("seconds", 0.0))
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds
            self._add_log(f"{stage}: {seconds:.2f} s")
        else:
            self._add_log(f"{stage}...")

    def _add_log(self, text: str) -> None:
        self.log.append(text)

    # -- outcome ---------------------------------------------------------------------------

    def _finish(self) -> None:
        self.returncode = self.process.returncode
        if self.process.cancelled:
            self.state = JobState.CANCELLED
        elif self.returncode == 0:
            self._succeed()
        else:
            self._fail(self._failure_message())
        self._close()

    def _succeed(self) -> None:
        try:
            self.result = self.on_success(self) if self.on_success is not None else None
        except BATsegError as error:
            self._fail(str(error))
            return
        except Exception as error:  # a bug while loading results: keep the traceback in the log
            self._add_log(traceback.format_exc())
            self._fail(f"the results could not be loaded: {error}")
            return
        self.state = JobState.SUCCEEDED

    def _failure_message(self) -> str:
        if self.returncode == USER_ERROR_STATUS:
            message = self._error_event or self._stderr_error or self._last_stderr
            return message or f"{self.title} refused the input (exit status 2); see the log"
        if self.returncode is not None and self.returncode < 0:
            return (f"{self.title} was stopped by signal {-self.returncode} (the computer may have run out of "
                    "memory); see the log")
        detail = f": {self._last_stderr}" if self._last_stderr else ""
        return f"{self.title} stopped unexpectedly (exit status {self.returncode}){detail}"

    def _fail(self, message: str) -> None:
        self.state = JobState.FAILED
        self.error = " ".join(message.split())
        self._add_log(f"error: {self.error}")

    def _close(self) -> None:
        self.total_seconds = time.perf_counter() - self._started
        self._add_log(f"{self.title}: {self.state.value}, total time {self.total_seconds:.1f} s")
        if self.cleanup is not None:
            self.cleanup()
        if self.on_finished is not None:
            self.on_finished(self)

    def full_log(self) -> str:
        """The whole log as text (shown to the user with an error)."""
        return "\n".join(self.log)


def _process_gui_events() -> None:
    """Keep Slicer's GUI painting while a caller waits (no-op headless)."""
    import slicer

    app = getattr(slicer, "app", None)
    if app is not None:
        app.processEvents()
