"""Shown instead of the app when the study cannot be opened (locked by another process, missing...)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from ..widgets.footer import AppFooter
from textual.widgets import Label, Static

from analysis.textsafe import visible, visible_line


class OpenFailedScreen(Screen):
    BINDINGS = [
        Binding("r", "retry", "Retry", id="open.retry"),
        Binding("q,escape", "quit", "Quit", id="open.quit"),
    ]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error", id="open-failed"):
            yield Label(f"✗ {visible_line(self.title_text)}", classes="dialog-title", markup=False)
            yield Static(visible(self.message), classes="dialog-body", markup=False, id="open-failed-message")
            yield Static("r: try again · q: quit", classes="dialog-help")
        yield AppFooter()

    def action_retry(self) -> None:
        self.app.pop_screen()
        self.app.open_study()

    def action_quit(self) -> None:
        self.app.exit(return_code=1, message=f"{self.title_text}: {self.message}")
