"""The significance rule, in one place: a coefficient is significant when its (adjusted) p < ALPHA.

The tables of ``rmtui summary``, the report's figures and the app's imprint screen all ask here. The
callers pass the Bonferroni-adjusted p where they show one.
"""

from __future__ import annotations

import math

ALPHA = 0.05
#: marker thresholds, strictest first (readable without colour)
MARKERS = ((0.001, "***"), (0.01, "**"), (ALPHA, "*"))


def _finite(p) -> bool:
    try:
        return p is not None and math.isfinite(float(p))
    except (TypeError, ValueError):
        return False


def is_significant(p, alpha: float = ALPHA) -> bool:
    """True when ``p`` is a finite number below ``alpha``; a missing or NaN p is not significant."""
    return _finite(p) and float(p) < alpha


def significance_marker(p, *, ns: str = "", missing: str = "") -> str:
    """'***' p < 0.001, '**' p < 0.01, '*' p < 0.05, else ``ns``; ``missing`` for a missing or NaN p."""
    if not _finite(p):
        return missing
    return next((m for limit, m in MARKERS if float(p) < limit), ns)
