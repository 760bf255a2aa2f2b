"""The warnings of one engine run, collected once each, for the panel and for scripts.

The engine reports a warning in up to three ways (see batseg/commands/predict.py and
batseg/progress.py):
- a `log` event whose message starts with "warning: " (GPU out of memory -> CPU, ONNX Runtime
  missing, the model's disclaimer, and each case's warnings as "CASE: message"); fine-tuning
  writes "WARNING: ..." the same way;
- the `result` event's "warnings" list (the same per-case warnings, without the "CASE: " prefix);
- outside json mode, a "batseg: warning: " line on stderr.

Decisions: a warning is kept once, in the order first seen. When the result event repeats a
warning already logged as "CASE: message", the logged entry is replaced by the plain message:
CASE is the Logic's fixed temporary file stem ("input"), which means nothing to the user.
Warnings the panel already shows permanently (the model's disclaimer) are not collected, so
the orange warning text is kept for what is particular to this run.
"""

from __future__ import annotations

from typing import Any, Iterable

LOG_PREFIX = "warning:"  # compared case-insensitively: fine-tuning writes "WARNING:"
STDERR_PREFIX = "batseg: warning: "


def _strip_prefix(text: str, prefix: str) -> str | None:
    """`text` without `prefix` (compared case-insensitively), None if it does not start with it."""
    text = text.strip()
    if not text.lower().startswith(prefix.lower()):
        return None
    return text[len(prefix):].strip() or None


class RunWarnings:
    """The warnings of one run, each once, in the order first seen."""

    def __init__(self, shown_elsewhere: Iterable[str] = ()) -> None:
        self._ignored = {_normalise(text) for text in shown_elsewhere if text}
        self.messages: list[str] = []

    def add_log_message(self, message: str) -> None:
        """A log event's message: kept if it is a "warning: " line."""
        warning = _strip_prefix(message, LOG_PREFIX)
        if warning is not None:
            self._add(warning)

    def add_stderr_line(self, line: str) -> None:
        """A plain stderr line: kept if it is the engine's "batseg: warning: " line. Other
        stderr lines (library messages, Python warnings) stay in the log only."""
        warning = _strip_prefix(line, STDERR_PREFIX)
        if warning is not None:
            self._add(warning)

    def add_result_event(self, event: dict[str, Any]) -> None:
        """The warnings list of a result event (which may repeat logged "CASE: message" lines)."""
        case = str(event.get("case") or "")
        warnings = event.get("warnings") or []
        if isinstance(warnings, str):  # tolerate a single string from another engine version
            warnings = [warnings]
        for warning in warnings:
            text = str(warning).strip()
            if text:
                self._add(text, case)

    def _add(self, text: str, case: str = "") -> None:
        key = _normalise(text)
        if key in self._ignored or key in map(_normalise, self.messages):
            return
        if case:  # the engine logs "CASE: text" before its result event repeats the plain text
            logged = _normalise(f"{case}: {text}")
            for index, message in enumerate(self.messages):
                if _normalise(message) == logged:
                    self.messages[index] = text  # keep its place, drop the meaningless CASE
                    return
        self.messages.append(text)


def _normalise(text: str) -> str:
    """Compare warnings regardless of spacing and letter case."""
    return " ".join(text.split()).lower()
