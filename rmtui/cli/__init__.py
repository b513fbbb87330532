"""The ``rmtui`` command. Each subcommand lives in its own module and registers on ``app``.

The top of the front: commands may import the app (``rmtui explore``) and every stage of ``analysis``;
errors reach the user as one line through ``base.main``."""

from __future__ import annotations

from . import bench_gpu as _bench_gpu  # noqa: F401
from . import bench_ingest as _bench_ingest  # noqa: F401
from . import explore as _explore  # noqa: F401
from . import featurize as _featurize  # noqa: F401
from . import fit as _fit  # noqa: F401
from . import ingest as _ingest  # noqa: F401  (registers commands)
from . import rewrite as _rewrite  # noqa: F401
from . import run as _run  # noqa: F401
from . import demo as _demo  # noqa: F401
from . import export as _export  # noqa: F401
from . import report as _report  # noqa: F401
from . import score as _score  # noqa: F401
from . import train as _train  # noqa: F401
from .base import app, main

__all__ = ["app", "main"]
