"""How many texts each RM cut at its maximum length, in words, with a warning above 5 %.

A truncated text was scored on part of its conversation (the context is cut from the left, the response
kept): past a few per cent the RM's agreement is that of a shorter task. The counts come from the
study (``analysis.store.scores.truncation``); every consumer (summary, report, app) prints these lines.
"""

from __future__ import annotations

from typing import Any, Iterable

TRUNCATION_WARN_SHARE = 0.05


def _v(r: dict[str, Any], k: str):
    """r[k], with NaN/NA (a DataFrame's missing value) as None."""
    v = r.get(k)
    try:
        return None if v is None or v != v else v
    except TypeError:  # pd.NA
        return None


def truncation_line(r: dict[str, Any]) -> str:
    """'rm-pre (pre): 50 of 100 texts (50.0 %) truncated at 256 tokens'."""
    share = _v(r, "share")
    pct = "-" if share is None else f"{100 * share:.1f} %"
    at = f" at {int(r['max_length']):,} tokens" if _v(r, "max_length") else ""
    return (f"{r.get('name') or r.get('model_id')} ({r.get('role') or '-'}): {int(r.get('n_truncated') or 0):,} of "
            f"{int(r.get('n_scored') or 0):,} texts ({pct}) truncated{at}")


def truncation_warnings(rows: Iterable[dict[str, Any]], threshold: float = TRUNCATION_WARN_SHARE) -> list[str]:
    """One warning per model whose truncated share is above ``threshold`` (5 %)."""
    out = []
    for r in rows:
        share = _v(r, "share")
        if share is not None and share > threshold:
            out.append(truncation_line(r) + f": over {100 * threshold:.0f} %, its rewards saw part of those "
                       "conversations only (raise --max-length, or read its agreement as on shortened texts)")
    return out


def truncation_status(rows: Iterable[dict[str, Any]], threshold: float = TRUNCATION_WARN_SHARE) -> list[str]:
    """Short forms of :func:`truncation_warnings` for a status line: 'rm-pre truncated 50 of 100 texts
    (50.0 %) at 256 tokens, over 5 %'."""
    out = []
    for r in rows:
        share = _v(r, "share")
        if share is not None and share > threshold:
            at = f" at {int(r['max_length']):,} tokens" if _v(r, "max_length") else ""
            out.append(f"{r.get('name') or r.get('model_id')} truncated {int(r.get('n_truncated') or 0):,} of "
                       f"{int(r.get('n_scored') or 0):,} texts ({100 * share:.1f} %){at}, over "
                       f"{100 * threshold:.0f} %")
    return out
