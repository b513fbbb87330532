"""Loading a transformers model quietly: no progress bars on stderr (they garble a TUI), errors only.

The lowest module of ``analysis.models``: the base loader, the embedded models and scoring call it."""

from __future__ import annotations

import os


def quiet_transformers() -> None:
    """Keep transformers/HF from printing progress bars and warnings into our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass
