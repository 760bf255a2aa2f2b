"""A child process whose output is read on background threads into a queue.

The GUI never blocks on the child: two reader threads (stdout, stderr) push lines into a
`queue.Queue`, and the owner drains it from the main thread (a qt.QTimer in Slicer, a sleep
loop in tests) with `read_lines()`. Lines of stdout that carry a `BATSEG {json}` event are
parsed with the engine's own `batseg.progress.parse_event` (torch-free).

Cancelling kills the whole process tree (nnU-Net starts worker processes): with psutil the
descendants are collected while the parent still lives, terminated, and killed after a grace
period; on POSIX the child also leads its own session, so the process group is signalled too,
which catches workers that were re-parented. Without psutil (a fresh Slicer before the
dependencies are installed) the process group (POSIX) or `taskkill /T` (Windows) is used.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from batseg.progress import parse_event

try:
    import psutil
except ImportError:  # psutil is installed with the dependencies; the fallbacks below cover a fresh Slicer
    psutil = None

_END = object()  # marks the end of one output stream in the queue


@dataclass(frozen=True)
class OutputLine:
    """One line of the child's output; `event` is the parsed BATSEG event, if it is one."""

    stream: str  # "stdout" or "stderr"
    text: str
    event: dict[str, Any] | None = None


class ChildProcess:
    """Runs `args` with output captured line by line on reader threads."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.args = [os.fspath(a) for a in args]
        self.env = env
        self.cwd = cwd
        self._popen: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._open_streams = 0
        self.cancelled = False

    def start(self) -> None:
        """Start the child and its two reader threads."""
        options: dict[str, Any] = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            options["start_new_session"] = True  # its own process group: killable as a whole
        self._popen = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **options,
        )
        for stream, name in ((self._popen.stdout, "stdout"), (self._popen.stderr, "stderr")):
            self._open_streams += 1
            threading.Thread(target=self._read, args=(stream, name), daemon=True, name=f"batseg-{name}").start()

    def _read(self, stream, name: str) -> None:
        """Reader thread: one queue item per line, then the end marker."""
        try:
            for line in stream:
                text = line.rstrip("\r\n")
                self._queue.put(OutputLine(name, text, parse_event(text) if name == "stdout" else None))
        finally:
            stream.close()
            self._queue.put(_END)

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def read_lines(self) -> list[OutputLine]:
        """Every line queued so far (never blocks)."""
        lines = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return lines
            if item is _END:
                self._open_streams -= 1
            else:
                lines.append(item)

    @property
    def finished(self) -> bool:
        """True once the child has exited and both streams have been read to the end."""
        return self._popen is not None and self._popen.poll() is not None and self._open_streams == 0

    def cancel(self, grace_seconds: float = 3.0) -> None:
        """Kill the child and all its descendants; returns when they are gone."""
        self.cancelled = True
        if self._popen is None or self._popen.poll() is not None:
            return
        kill_process_tree(self._popen.pid, grace_seconds)
        try:
            self._popen.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


def kill_process_tree(pid: int, grace_seconds: float = 3.0) -> None:
    """Terminate `pid` and its descendants, killing those still alive after the grace period."""
    if psutil is not None:
        _kill_with_psutil(pid, grace_seconds)
    if os.name == "nt":
        if psutil is None:
            subprocess.run(["taskkill", "/PID", str(pid), "/T", "/F"], capture_output=True, check=False)
        return
    # POSIX: the child leads its own process group (start_new_session): catch re-parented workers.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return


def _kill_with_psutil(pid: int, grace_seconds: float) -> None:
    try:
        parent = psutil.Process(pid)
        processes = parent.children(recursive=True) + [parent]  # collected while the parent lives
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_seconds)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_seconds)

