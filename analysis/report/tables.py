"""Reading the report's Markdown tables back (for tests and scripts that check what the report says)
and walking a summary's numbers. Moved out of ``document``.
"""

from __future__ import annotations

from typing import Any, Iterable


def parse_md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The tables of a Markdown report (for tests and scripts that check the report's numbers)."""
    tables = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            header = _split_row(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(_split_row(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def _split_row(line: str) -> list[str]:
    cells, cur, esc = [], "", False
    body = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    for ch in body:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def iter_numbers(obj: Any) -> Iterable[float]:  # pragma: no cover - helper for scripts
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from iter_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from iter_numbers(v)
