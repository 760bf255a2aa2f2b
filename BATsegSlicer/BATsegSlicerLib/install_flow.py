"""The panel's Dependencies section and its install flow, as plain code the panel and tests drive.

The checks and the installer are install.py's; this file decides what the panel says about them
and in which order the user is asked:
- `refresh` checks what is installed and says it in one line ("Missing or too old: ...", or
  "All dependencies are installed."); the section opens when something is missing. On a Slicer
  that cannot run BATseg (`blocked`, compatibility.startup_problem) nothing is checked and
  nothing is ever installed.
- `offer`, before a run: if something is missing, the run does not start; the user is asked
  whether to install now and, on OK, the install starts without a second question.
- `install` (the Install button): asks first (what is downloaded, that Slicer's own SimpleITK,
  numpy and requests are kept), installs, then offers a restart (modules already imported
  would otherwise keep their old versions). A failed install is shown under the title
  "The dependencies could not be installed."; what is still missing is checked again in every
  outcome, also after a failed pip call.
Every refresh is handed to `on_change` (the panel re-draws the section and its buttons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from BATsegSlicerLib import install
from BATsegSlicerLib.dialog_texts import NOT_INSTALLED, RESTART_QUESTION, install_question, offer_install_question
from BATsegSlicerLib.dialogs import Dialogs

NOTHING_INSTALLED = "Nothing is installed into this Slicer: see the message at the top."
ALL_INSTALLED = "All dependencies are installed."

Log = Callable[[str], None]


@dataclass(frozen=True)
class DependencyStatus:
    """What the Dependencies section shows."""

    text: str
    expand: bool  # open the section: something is missing or too old


def _restart_slicer() -> None:
    import slicer.util

    slicer.util.restart()


class InstallFlow:
    """What is missing, and the questions and steps of installing it."""

    def __init__(self, blocked: str = "", check: Callable[[], list] = install.check,
                 install_dependencies: Callable[[Log], bool] = install.install_dependencies,
                 restart: Callable[[], None] = _restart_slicer) -> None:
        """`check`, `install_dependencies` and `restart` are install.py's and Slicer's; tests inject stand-ins."""
        self.blocked = blocked
        self._check = check
        self._install = install_dependencies
        self._restart = restart
        self.problems: list[install.Problem] = []
        self.on_change: Callable[[DependencyStatus], None] = lambda status: None

    @property
    def missing(self) -> bool:
        """Something can be installed (the Install button is usable when no run is going on)."""
        return bool(self.problems)

    def refresh(self) -> DependencyStatus:
        """Check again what is installed; the status is also handed to `on_change`."""
        if self.blocked:
            self.problems = []
            status = DependencyStatus(NOTHING_INSTALLED, expand=False)
        else:
            self.problems = self._check()
            described = install.describe(self.problems)
            status = DependencyStatus(f"Missing or too old: {described}" if self.problems else ALL_INSTALLED,
                                      expand=bool(self.problems))
        self.on_change(status)
        return status

    def offer(self, dialogs: Dialogs, log: Log) -> bool:
        """Before a run: True if dependencies are missing (the user was offered to install them)."""
        self.refresh()
        if not self.problems:
            return False
        if dialogs.confirm(offer_install_question(install.describe(self.problems))):
            self.install(dialogs, log, confirmed=True)
        return True

    def install(self, dialogs: Dialogs, log: Log, confirmed: bool = False) -> bool:
        """Install what is missing (asked first unless `confirmed`); True if something was installed."""
        self.refresh()
        if self.blocked or not self.problems:
            return False
        if not confirmed and not dialogs.confirm(install_question(install.describe(self.problems))):
            return False
        try:
            with dialogs.guard(NOT_INSTALLED):
                installed = self._install(log)
                if installed and dialogs.confirm_yes_no(RESTART_QUESTION):
                    self._restart()
        finally:
            self.refresh()  # what is still missing, also after a failed pip call
        return installed
