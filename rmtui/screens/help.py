"""The help screen: every key of the screen below (as remapped by the keymap), and how to remap."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

INTRO = (
    "rmtui explore: read the feature imprint (c), the regime table (m), walk the entries, open one "
    "(enter), rewrite and rescore it (w / W), tag (1-4, T), note (n), select (s t u; gs gt gu for every "
    "pair of the filter), undo (U) and export (e). h / l move between columns (the list scrolls "
    "sideways); gg goes to the top. F counts the values of the current column and drills down; \" shows "
    "the selected pairs of the filter. Triage is saved in the study at once. The footer shows the most "
    "used keys; this list has them all. Words: g or i opens the glossary."
)


def bindings_table(screen: Screen) -> Table:
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    t.add_column("key", style="bold cyan", no_wrap=True)
    t.add_column("action")
    t.add_column("id (for keymap.toml)", style="dim", no_wrap=True)
    rows: dict[tuple[str, str], list] = {}  # every key of an action, in order: "↓ j", not only "↓"
    # the screen's own keys first (in their ranked order), then the focused widget's, then the app's
    def rank(item):
        node = item[1].node
        return 0 if node is screen else (2 if node is screen.app else 1)

    for key, ab in sorted(screen.active_bindings.items(), key=rank):
        b = ab.binding
        if not b.description or not b.id:
            continue
        keys = rows.setdefault((b.action, b.tooltip or b.description), [[], b.id])[0]
        shown = screen.app.get_key_display(b)
        if shown not in keys:
            keys.append(shown)
    for (_, description), (keys, bid) in rows.items():
        t.add_row(" ".join(keys), description, bid)
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close"),
                Binding("g", "glossary", "Glossary: what the words mean", id="help.glossary")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Text.assemble(("Help", "bold"), "  ·  ", ("g", "bold cyan"),
                                       ": the glossary (what margin, regime, γ, θ, imprint … mean; i from any screen)"),
                         id="help-title")
            yield Static(INTRO, id="help-intro")
            yield Static(bindings_table(self.under), id="help-keys")
            yield Static(
                "Command palette: ctrl+p. Remap keys in ~/.config/rmtui/keymap.toml (or $RMTUI_KEYMAP): "
                'lines like  "list.open" = "o"  (id = keys, comma-separated). escape closes this help.',
                id="help-foot")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_glossary(self) -> None:
        from .glossary import GlossaryScreen

        self.app.push_screen(GlossaryScreen())

    def action_close(self) -> None:
        self.dismiss(None)
