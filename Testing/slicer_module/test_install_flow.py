"""The Dependencies section and its install flow (BATsegSlicerLib/install_flow.py) clicked through
with scripted dialogs (issue 20, item 11): what the section says, which question comes when, that
nothing is installed without OK, the restart offer, a failed install, and a blocked Slicer."""

from __future__ import annotations

import pytest
from batseg.errors import BATsegError

from BATsegSlicerLib.install import Problem
from BATsegSlicerLib.install_flow import ALL_INSTALLED, NOTHING_INSTALLED, DependencyStatus, InstallFlow
from BATsegSlicerLib.panel_state import PanelState
from panel_fakes import ScriptedDialogs

MISSING = [Problem("torch", ">=2.1.2,!=2.9.*", None), Problem("dynamic-network-architectures", ">=0.4", "0.2.0")]
DESCRIBED = "torch (not installed); dynamic-network-architectures 0.2.0 (needs >=0.4)"
INSTALL_QUESTION = (f"Install or update {DESCRIBED} in Slicer's Python? This downloads packages (torch: the build "
                    "for this computer's GPU, through the PyTorch extension's light-the-torch) and can take several "
                    "minutes. Slicer's own SimpleITK, numpy and requests are kept.")
RESTART = "Dependencies installed. Restart Slicer now to use them?"


class Installer:
    """install.check / install_dependencies / restart stand-ins: installing fixes everything."""

    def __init__(self, problems=MISSING, fails: bool = False) -> None:
        self.problems, self.fails = list(problems), fails
        self.checks = self.installs = self.restarts = 0

    def check(self):
        self.checks += 1
        return list(self.problems)

    def install(self, log) -> bool:
        self.installs += 1
        log("pip install ...")
        if self.fails:
            raise BATsegError("the dependencies are not complete: imagecodecs (not installed)")
        self.problems = []
        return True

    def restart(self) -> None:
        self.restarts += 1

    def flow(self, blocked: str = "") -> tuple[InstallFlow, list[DependencyStatus]]:
        flow = InstallFlow(blocked, check=self.check, install_dependencies=self.install, restart=self.restart)
        shown: list[DependencyStatus] = []
        flow.on_change = shown.append
        return flow, shown


def test_the_section_says_what_is_missing_and_opens():
    flow, shown = Installer().flow()
    assert not flow.missing  # before the first check
    assert flow.refresh() == DependencyStatus(f"Missing or too old: {DESCRIBED}", expand=True)
    assert flow.missing and shown == [DependencyStatus(f"Missing or too old: {DESCRIBED}", expand=True)]
    complete, shown = Installer(problems=[]).flow()
    assert complete.refresh() == DependencyStatus(ALL_INSTALLED, expand=False) and not complete.missing
    assert ALL_INSTALLED == "All dependencies are installed."


def test_install_asks_first_and_cancel_installs_nothing():
    installer = Installer()
    flow, shown = installer.flow()
    dialogs = ScriptedDialogs(False)
    assert flow.install(dialogs, print) is False
    assert dialogs.asked == [INSTALL_QUESTION] and installer.installs == 0 and flow.missing


def test_install_then_restart_yes_or_no():
    for restart in (True, False):
        installer = Installer()
        flow, shown = installer.flow()
        dialogs, log = ScriptedDialogs(True, restart), []
        assert flow.install(dialogs, log.append) is True
        assert dialogs.asked == [INSTALL_QUESTION, RESTART] and log == ["pip install ..."]
        assert installer.restarts == int(restart)
        assert shown[-1] == DependencyStatus(ALL_INSTALLED, expand=False) and not flow.missing


def test_a_failed_install_is_shown_and_checked_again():
    installer = Installer(fails=True)
    flow, shown = installer.flow()
    dialogs = ScriptedDialogs(True)  # OK to installing; no restart question after a failure
    with pytest.raises(BATsegError):
        flow.install(dialogs, print)
    assert dialogs.asked == [INSTALL_QUESTION] and installer.restarts == 0
    assert dialogs.errors == [("The dependencies could not be installed.\n\nthe dependencies are not complete: "
                               "imagecodecs (not installed)", "")]
    assert installer.checks == 2 and shown[-1].expand and flow.missing  # checked again after the failure


def test_nothing_to_install_and_a_blocked_slicer_ask_nothing():
    installer = Installer(problems=[])
    flow, _ = installer.flow()
    assert flow.install(ScriptedDialogs(), print) is False and installer.installs == 0
    blocked_installer = Installer()
    blocked, shown = blocked_installer.flow(blocked="Slicer 5.8.1 bundles Python 3.9.10 ...")
    assert blocked.install(ScriptedDialogs(), print) is False
    assert blocked_installer.checks == 0 and blocked_installer.installs == 0
    assert shown == [DependencyStatus(NOTHING_INSTALLED, expand=False)]
    assert NOTHING_INSTALLED == "Nothing is installed into this Slicer: see the message at the top."


def test_offer_before_a_run():
    complete, _ = Installer(problems=[]).flow()
    assert complete.offer(ScriptedDialogs(), print) is False  # nothing missing: the run starts
    declined = ScriptedDialogs(False)
    installer = Installer()
    flow, _ = installer.flow()
    assert flow.offer(declined, print) is True and installer.installs == 0
    assert declined.asked == [f"BATseg needs: {DESCRIBED}. Install now?"]
    accepted = ScriptedDialogs(True, False)
    installer = Installer()
    flow, _ = installer.flow()
    assert flow.offer(accepted, print) is True and installer.installs == 1
    assert accepted.asked == [f"BATseg needs: {DESCRIBED}. Install now?", RESTART]  # no second install question


def test_the_install_button_is_usable_only_with_something_to_install(mrml):
    from BATsegSlicerLib.parameter_node import parameter_node

    state = PanelState(lambda: parameter_node(mrml.scene))
    assert state.buttons(has_model=True, dependencies_missing=True).install_enabled
    assert not state.buttons(has_model=True, dependencies_missing=False).install_enabled

    class Running:
        running = True

    state.start("segment", Running())
    assert not state.buttons(has_model=True, dependencies_missing=True).install_enabled  # not during a run
    blocked = PanelState(lambda: parameter_node(mrml.scene), blocked="too old")
    assert not blocked.buttons(has_model=True, dependencies_missing=True).install_enabled
