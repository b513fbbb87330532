"""Enumerated options typed by a person: the full value, or a unique prefix of it (``resists`` for
``resists_alignment``, ``md`` for ``markdown``), as the app's lists let one pick by the shown word.

An exact match (case-insensitive) wins; else a unique prefix; an ambiguous prefix is refused listing
what it matches, an unknown word listing what is allowed. Data values (subset, tag names) are not
enumerations: :func:`resolve` is also used for them, but then only an exact value or a unique prefix
of the values the study holds is accepted, and the message says so.
"""

from __future__ import annotations

from typing import Iterable

from analysis.errors import RmtuiError
from analysis.textsafe import visible_line


def resolve(flag: str, value: str | None, allowed: Iterable[str], *, aliases: dict[str, str] | None = None,
            what: str = "one of") -> str | None:
    """``value`` as one of ``allowed``: exact (any case), an alias, or a unique prefix. None stays None."""
    if value is None:
        return None
    options = [str(a) for a in allowed if a is not None]
    aliases = {k.lower(): v for k, v in (aliases or {}).items()}
    low = value.lower()
    for o in options:
        if o == value:
            return o
    exact = [o for o in options if o.lower() == low]
    if len(exact) == 1:
        return exact[0]
    if low in aliases and aliases[low] in options:
        return aliases[low]
    if value:
        hits = sorted({o for o in options if o.lower().startswith(low)}
                      | {v for k, v in aliases.items() if k.startswith(low) and v in options})
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise RmtuiError(f"{flag} {visible_line(value)!r} is ambiguous: it begins "
                             f"{', '.join(map(visible_line, hits))}; type more of it", "Bad option")
    shown = ", ".join(map(visible_line, options)) or "none"
    raise RmtuiError(f"{flag} {visible_line(value)!r}: {what} {shown}", "Bad option")
