"""The README's key table, generated from the bindings (the help screen lists the same bindings).

``python -m rmtui.keys`` prints the table; ``python -m rmtui.keys --write README.md`` replaces the
table between the ``<!-- keys:start -->`` and ``<!-- keys:end -->`` markers. A test checks that the
README holds what this generates, and that each screen's help lists the same ids.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from textual.binding import Binding

START, END = "<!-- keys:start -->", "<!-- keys:end -->"


def places() -> list[tuple[str, list[Binding]]]:
    """(where, bindings) in the order the README lists them; triage keys once, for list and entry."""
    from .app import RmtuiApp
    from .screens.coefficients import CoefficientScreen
    from .screens.common import TRIAGE_BINDINGS
    from .screens.entry import EntryScreen
    from .screens.glossary import GlossaryScreen
    from .screens.help import HelpScreen
    from .screens.entry_list import ListScreen
    from .screens.regimes import RegimeScreen
    from .screens.rewrite import RewriteScreen
    from .widgets.entry_list import EntryList
    from .widgets.table import ListTable

    triage = {b.id for b in TRIAGE_BINDINGS}

    def own(bs):
        return [b for b in bs if isinstance(b, Binding) and b.id and b.description and b.id not in triage]

    def under(screen, widget):
        """A screen's bindings below a focused widget's: a key the widget binds too is the widget's."""
        taken = {k.strip() for b in widget for k in b.key.split(",")}
        return [b for b in own(screen) if not {k.strip() for k in b.key.split(",")} <= taken] + own(widget)

    return [
        ("everywhere", own(RmtuiApp.BINDINGS)),
        ("list", own(ListScreen.BINDINGS) + own(EntryList.BINDINGS)),
        ("triage (list and entry)", list(TRIAGE_BINDINGS)),
        ("entry", own(EntryScreen.BINDINGS)),
        ("rewrite", own(RewriteScreen.BINDINGS)),
        ("coefficients", under(CoefficientScreen.BINDINGS, ListTable.BINDINGS)),
        ("regimes", under(RegimeScreen.BINDINGS, ListTable.BINDINGS)),
        ("help", own(HelpScreen.BINDINGS)),
        ("glossary", own(GlossaryScreen.BINDINGS)),
    ]


def key_display(b: Binding) -> str:
    from .app import RmtuiApp

    app = _APP[0] if _APP else None
    if app is None:
        app = RmtuiApp("study.duckdb")
        _APP.append(app)
    return " ".join(app.get_key_display(dataclasses.replace(b, key=k.strip())) for k in b.key.split(","))


_APP: list = []


def rows() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(where, [(keys, description, id)])."""
    return [(where, [(key_display(b), b.tooltip or b.description, b.id) for b in bs]) for where, bs in places()]


def markdown() -> str:
    out = ["| where | keys |", "| --- | --- |"]
    for where, rs in rows():
        cells = " · ".join(f"`{k}` {d}" for k, d, _ in rs).replace("|", "\\|")
        out.append(f"| {where} | {cells} |")
    return "\n".join(out)


def write(readme: Path) -> bool:
    text = readme.read_text(encoding="utf-8")
    a, b = text.index(START) + len(START), text.index(END)
    new = text[:a] + "\n" + markdown() + "\n" + text[b:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) > 2 and sys.argv[1] == "--write":
        print("updated" if write(Path(sys.argv[2])) else "up to date")
    else:
        print(markdown())
