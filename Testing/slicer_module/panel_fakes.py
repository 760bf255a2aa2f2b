"""Stand-ins for what the panel's flows receive from the application (a uniquely named helper
module, as slicer_test_support.py): scripted dialogs that answer the flows' questions and record
what the user was asked and shown."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class ScriptedDialogs:
    """dialogs.Dialogs answered from a script: `answers` are the user's clicks in order (True: OK /
    Yes). An unexpected question fails the test (IndexError); `asked`, `infos` and `errors` record
    what the user saw. `guard` shows the error and raises it again, as slicer.util.tryWithErrorDisplay."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []
        self.infos: list[str] = []
        self.errors: list[tuple[str, str]] = []

    def confirm(self, question: str) -> bool:
        self.asked.append(question)
        return self.answers.pop(0)

    def confirm_yes_no(self, question: str) -> bool:
        return self.confirm(question)

    def info(self, text: str) -> None:
        self.infos.append(text)

    def error(self, text: str, details: str = "") -> None:
        self.errors.append((text, details))

    @contextmanager
    def guard(self, failure: str, wait_cursor: bool = True) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            self.errors.append((f"{failure}\n\n{error}", ""))
            raise
