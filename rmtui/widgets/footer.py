"""The footer of every screen: compact, without the palette hint (ctrl+p still opens it; the help says
so), so that a screen's most used keys fit in 80 columns. Each screen ranks its keys: show=True for
the few that go here, the rest are in ? (help)."""

from __future__ import annotations

from textual.widgets import Footer


class AppFooter(Footer):
    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
