"""User-facing errors of the engine.

Every failure a user can cause (bad input file, wrong model file, bad option) is raised as a
`BATsegError` whose message is one line saying what is wrong and what to do. The CLI prints
that line and exits with status 2, never a traceback; programming errors still raise normally.
"""


class BATsegError(Exception):
    """An error caused by input, options or environment: printed as one line to the user."""

    def __init__(self, message: str) -> None:
        # Collapse to one line: the CLI and the Slicer panel show it verbatim.
        super().__init__(" ".join(str(message).split()))


class ModelFileError(BATsegError):
    """A model file is missing, corrupt, truncated, tampered with or incompatible."""


class InputImageError(BATsegError):
    """An input image cannot be segmented as given (wrong dimension, empty, NaN, ...)."""
