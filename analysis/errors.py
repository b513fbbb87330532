"""One exception type for everything a user can get wrong or the world can refuse.

Each error has a short title and a message that names the file, line, field or model involved.
The CLI prints it, the app shows it in a dialog; neither shows a traceback.
"""

from __future__ import annotations


class RmtuiError(Exception):
    """An error meant for the user: a title and a message, no traceback."""

    title = "rmtui error"

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(RmtuiError):
    """Bad input data: names the file and line (or field)."""

    title = "Bad input"


class StudyError(RmtuiError):
    """The study file cannot be opened or is not what it should be."""

    title = "Study file"


class StudyLockedError(StudyError):
    """Another process holds the study open for writing."""

    title = "Study is in use"


class ModelError(RmtuiError):
    """A model cannot be loaded or used."""

    title = "Model"


class EndpointError(RmtuiError):
    """An LLM endpoint refused or failed."""

    title = "LLM endpoint"
