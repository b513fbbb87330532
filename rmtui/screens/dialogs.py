"""Small modal dialogs: input, confirm, error, choice. Keyboard only; escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from rich.text import Text
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from analysis.textsafe import visible, visible_line


class InputDialog(ModalScreen[str | None]):
    """Ask for one line of text; enter accepts, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", help: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.help = help

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(visible_line(self.title_text), classes="dialog-title", markup=False)
            yield Input(value=self.value, placeholder=self.placeholder, id="dialog-input")
            yield Static(self.help or "enter: accept · escape: cancel", classes="dialog-help", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no: y / n (escape is no)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="dialog.yes"),
        Binding("n,escape", "answer(False)", "No", id="dialog.no"),
    ]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(visible_line(self.title_text), classes="dialog-title", markup=False)
            yield Static(visible(self.message), classes="dialog-body", markup=False)
            yield Static("y: yes · n / escape: no", classes="dialog-help")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ErrorDialog(ModalScreen[None]):
    """An error for the user: a title and a message, never a traceback."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="dialog.close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error"):
            yield Label(f"✗ {visible_line(self.title_text)}", classes="dialog-title", markup=False)
            yield Static(visible(self.message), classes="dialog-body", markup=False)
            yield Static("enter / escape: close", classes="dialog-help")

    def action_close(self) -> None:
        self.dismiss(None)


class ChoiceDialog(ModalScreen[str | None]):
    """Pick one of a list: arrows and enter; escape cancels. Choices are (value, label) pairs."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], current: str | None = None,
                 help: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices
        self.current = current
        self.help = help

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(visible_line(self.title_text), classes="dialog-title", markup=False)
            yield OptionList(*[Option(Text(visible_line(label)), id=f"c{i}") for i, (_, label) in enumerate(self.choices)],
                             id="dialog-options")
            yield Static(self.help or "↑↓: move · enter: choose · escape: cancel", classes="dialog-help", markup=False)

    def on_mount(self) -> None:
        self._highlight()

    def reset(self, choices: list[tuple[str, str]], current: str | None = None) -> None:
        """New choices for a dialog that is reused (installed once, pushed again)."""
        self.choices, self.current = choices, current
        if self.is_mounted:
            ol = self.query_one(OptionList)
            ol.clear_options()
            ol.add_options([Option(Text(visible_line(label)), id=f"c{i}") for i, (_, label) in enumerate(choices)])
            self._highlight()

    def _highlight(self) -> None:
        ol = self.query_one(OptionList)
        values = [v for v, _ in self.choices]
        if self.current in values:
            ol.highlighted = values.index(self.current)
        elif values:
            ol.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        i = int(event.option.id[1:])
        self.dismiss(self.choices[i][0])

    def action_cancel(self) -> None:
        self.dismiss(None)
