"""Shared pytest set-up for every test folder: each test starts in the process's own locale.

In the full run some library sets the C locale's ASCII character type mid-session (seen: tests
after it failed to read UTF-8 docs, and torch.compile failed to read its own sources). The
locale is process-wide state, so a test must not depend on what an earlier one left behind:
the character-type locale is put back after each test that changed it.
"""

from __future__ import annotations

import locale
from typing import Iterator

import pytest

_START = locale.setlocale(locale.LC_CTYPE)


@pytest.fixture(autouse=True)
def _keep_the_locale() -> Iterator[None]:
    yield
    if locale.setlocale(locale.LC_CTYPE) != _START:
        locale.setlocale(locale.LC_CTYPE, _START)
