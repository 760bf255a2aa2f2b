"""The message boxes the panel's flows use, as an interface the flows receive.

The flows (install_flow, job_control, model_list) decide what to ask and what to do with the
answer; they never call Qt. In the application they get `SlicerDialogs` (slicer.util's boxes);
headless tests give them a scripted stand-in with the same methods, which answers the questions
and records what was asked, so the sequence a user clicks through is tested here.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Dialogs(Protocol):
    """What the flows may ask or tell the user."""

    def confirm(self, question: str) -> bool:
        """OK / Cancel: True for OK."""

    def confirm_yes_no(self, question: str) -> bool:
        """Yes / No: True for Yes."""

    def info(self, text: str) -> None:
        """A notice the user acknowledges."""

    def error(self, text: str, details: str = "") -> None:
        """An error box, with `details` (e.g. a run's full log) behind its details button."""

    def guard(self, failure: str, wait_cursor: bool = True) -> AbstractContextManager:
        """A block whose exception is shown under the title `failure`, then raised again."""


class SlicerDialogs:
    """`Dialogs` on Slicer's own message boxes (needs the application)."""

    def confirm(self, question: str) -> bool:
        import slicer.util

        return bool(slicer.util.confirmOkCancelDisplay(question))

    def confirm_yes_no(self, question: str) -> bool:
        import slicer.util

        return bool(slicer.util.confirmYesNoDisplay(question))

    def info(self, text: str) -> None:
        import slicer.util

        slicer.util.infoDisplay(text)

    def error(self, text: str, details: str = "") -> None:
        import slicer.util

        slicer.util.errorDisplay(text, detailedText=details)

    def guard(self, failure: str, wait_cursor: bool = True) -> AbstractContextManager:
        import slicer.util

        return slicer.util.tryWithErrorDisplay(failure, waitCursor=wait_cursor)
