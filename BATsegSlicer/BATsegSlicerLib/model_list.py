"""The panel's model choice: the list, which entry is selected after a refresh, the line describing
the selected model, and the add / remove flows. Plain code; the panel only fills its combo box.

Decisions:
- After a refresh the selection is, in order: the model just added or fine-tuned, the model the
  parameter node remembers, else the first (shipped models come first); no model: nothing
  selected, and the info line says how to add one.
- The info line names the model, its postprocessing, its measured held-out quality, how long a
  scan takes on a CPU (measured per topology: batseg.inference.expected_time) and its
  disclaimer, where the model is chosen (not only in the model card).
- Shipped models cannot be removed (Remove is disabled); a user model is deleted only after a
  question naming its file.
- Unusable model files are not listed; each gets one "Model file skipped: ..." log line.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from BATsegSlicerLib.dialog_texts import MODEL_NOT_ADDED, MODEL_NOT_REMOVED, remove_model_question
from BATsegSlicerLib.dialogs import Dialogs
from BATsegSlicerLib.models import ModelEntry

NO_MODEL = "No model file found: add one with 'Add model file...'."

Log = Callable[[str], None]


def model_info(entry: ModelEntry | None) -> str:
    """The line under the model choice."""
    if entry is None:
        return NO_MODEL
    parts = (f"{entry.title} {entry.version}.", entry.postprocessing_summary, entry.held_out_summary,
             entry.expected_time, entry.disclaimer)
    return " ".join(part for part in parts if part)


def removable(entry: ModelEntry | None) -> bool:
    return entry is not None and not entry.shipped


class ModelList:
    """The usable models as the panel lists them (`logic`: BATsegLogic, or a stand-in with `models()`,
    `addModel(path)` and `library`)."""

    def __init__(self, logic: Any, dialogs: Dialogs) -> None:
        self._logic = logic
        self._dialogs = dialogs
        self.entries: list[ModelEntry] = []

    def refresh(self) -> list[str]:
        """List the models again; returns one log line per model file that was skipped."""
        self.entries, problems = self._logic.models()
        return [f"Model file skipped: {problem}" for problem in problems]

    def entry(self, path: str) -> ModelEntry | None:
        return next((entry for entry in self.entries if entry.path == path), None)

    def selection(self, wanted: str) -> int:
        """The row to select after a refresh: `wanted` (a model path) if listed, else the first (-1: none)."""
        found = next((row for row, entry in enumerate(self.entries) if wanted and entry.path == wanted), -1)
        return found if found >= 0 else (0 if self.entries else -1)

    def remove(self, entry: ModelEntry | None, log: Log, then: Callable[[], None]) -> bool:
        """Delete a user model after asking; `then` runs once it is gone (the panel lists again)."""
        if not removable(entry):
            return False
        if not self._dialogs.confirm(remove_model_question(entry.path)):
            return False
        with self._dialogs.guard(MODEL_NOT_REMOVED, wait_cursor=False):
            self._logic.library.remove(entry)
            log(f"Model removed: {entry.label}")
            then()
        return True

    def add(self, path: str, log: Log, then: Callable[[str], None]) -> ModelEntry:
        """Verify and copy a model file into the user models folder; `then(path)` selects it."""
        with self._dialogs.guard(MODEL_NOT_ADDED):
            entry = self._logic.addModel(path)
            log(f"Model added: {entry.label}")
            then(entry.path)
        return entry

    def user_folder(self) -> str:
        """The user models folder, created if needed (the panel opens it)."""
        os.makedirs(self._logic.library.user_dir, exist_ok=True)
        return self._logic.library.user_dir
