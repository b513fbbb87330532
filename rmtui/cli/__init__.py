"""The ``rmtui`` command. Each subcommand lives in its own module and registers on ``app``."""

from __future__ import annotations

from . import ingest as _ingest  # noqa: F401  (registers commands)
from . import train as _train  # noqa: F401
from .base import app, main

__all__ = ["app", "main"]
