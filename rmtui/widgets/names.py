"""Short, distinguishable names for the list's subset column."""

from __future__ import annotations


def short_names(names: list[str], width: int) -> dict[str, str]:
    """Names cut to ``width`` so that they stay distinguishable: inner words of a dashed name shrink to
    their initial ('helpful-rejection-sampled' -> 'h-r-sampled') before anything is cut, and a cut
    keeps the end (where 'helpful-base' and 'helpful-online' differ) when the starts are shared."""
    out = {}
    for n in names:
        if len(n) <= width:
            out[n] = n
            continue
        parts = n.split("-")
        short = n
        for i in range(len(parts) - 1):  # shrink from the left, keeping the last word
            parts[i] = parts[i][:1]
            short = "-".join(parts)
            if len(short) <= width:
                break
        if len(short) > width:
            short = short[: max(1, width - 1)] + "…"
        out[n] = short
    if len(set(out.values())) < len(out):  # a collision: cut in the middle instead, keeping both ends
        h = max(1, (width - 1) // 2)
        out = {n: n if len(n) <= width else n[:h] + "…" + n[-(width - 1 - h):] for n in names}
    return out
