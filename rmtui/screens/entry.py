"""One entry: the conversation once, then chosen and rejected side by side (stacked when narrow)."""

from __future__ import annotations

import re

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from analysis.store.browse import EntryFilter

from ..widgets.diff import word_diff
from ..widgets.entry_list import REGIME_SHORT, EntryList
from .common import TRIAGE_BINDINGS, TriageMixin, error_parts

NARROW = 100
_TURN = re.compile(r"(Human:|Assistant:|System:)")


def conversation_text(context: str) -> Text:
    t = Text()
    for part in _TURN.split((context or "").strip()):
        if not part:
            continue
        if part == "Human:":
            t.append("Human:", style="bold cyan")
        elif part == "Assistant:":
            t.append("Assistant:", style="bold green")
        elif part == "System:":
            t.append("System:", style="bold magenta")
        else:
            t.append(part)
    return t


def _num(v, nd=3) -> str:
    try:
        if v is None or v != v:
            return "-"
    except TypeError:
        return "-"
    return f"{v:+.{nd}f}"


class EntryScreen(TriageMixin, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="entry.back"),
        Binding("j", "step(1)", "Next", id="entry.next"),
        Binding("k", "step(-1)", "Prev", id="entry.prev"),
        Binding("w", "rewrite('chosen')", "Rewrite chosen", id="entry.rewrite_chosen"),
        Binding("W", "rewrite('rejected')", "Rewrite rejected", id="entry.rewrite_rejected"),
        *TRIAGE_BINDINGS,
    ]

    def __init__(self, pair_id: str, entry_list: EntryList | None = None) -> None:
        super().__init__()
        self.pair_id = pair_id
        self.entry_list = entry_list
        self.entry = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="entry-head")
        with VerticalScroll(id="entry-body"):
            yield Static(id="conversation")
            with Container(id="sides"):
                with Vertical(classes="side", id="side-chosen"):
                    yield Static(id="chosen-title", classes="side-title")
                    yield Static(id="chosen-text", classes="side-text")
                    yield Static(id="chosen-info", classes="side-info")
                with Vertical(classes="side", id="side-rejected"):
                    yield Static(id="rejected-title", classes="side-title")
                    yield Static(id="rejected-text", classes="side-text")
                    yield Static(id="rejected-info", classes="side-info")
            yield Static(id="rewrites")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._layout(self.size.width)
        self.show(self.pair_id)
        self.query_one("#entry-body").focus()

    def on_resize(self, event) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        self.set_class(width < NARROW, "narrow")

    # -- TriageMixin hooks -------------------------------------------------------------------------
    def current_pair(self) -> str | None:
        return self.pair_id

    def current_filter(self) -> EntryFilter:
        return self.entry_list.filt if self.entry_list is not None else EntryFilter(regime=None)

    def after_triage(self, summary: str) -> None:
        if self.entry_list is not None:
            self.entry_list.invalidate()
        self.show(self.pair_id, status=summary)

    # -- content -----------------------------------------------------------------------------------
    def show(self, pair_id: str, status: str = "") -> None:
        try:
            e = self.rapp.service.entry(pair_id)
        except Exception as ex:
            self.rapp.show_error(*error_parts(ex))
            return
        self.pair_id = pair_id
        self.entry = e
        p, m = e.pair, e.metrics or {}
        held = {None: "unknown", True: "held out", False: "in sample"}[p.get("heldout")]
        head = Text()
        head.append(f"{pair_id[:12]}", style="bold")
        head.append(f" · {p['subset']}/{p['split']} · {held}")
        regime = m.get("regime")
        head.append(" · regime ")
        head.append(f"{REGIME_SHORT.get(regime, regime or '-')}", style="bold")
        head.append(f" · γ {m.get('gamma') or '-'} · margin pre {_num(m.get('margin_pre'), 2)}"
                    f" post {_num(m.get('margin_post'), 2)}")
        if p.get("identical"):
            head.append(" · IDENTICAL TEXTS", style="bold yellow")
        head.append("\n")
        head.append("tags: ", style="bold")
        head.append(", ".join(e.tags) if e.tags else "-", style="magenta")
        head.append(" · selected" if e.selected else "")
        head.append(" · note: ", style="bold")
        head.append(e.note or "-")
        self.query_one("#entry-head", Static).update(head)
        self.query_one("#conversation", Static).update(conversation_text(p["context"]))
        tc, tr, ratio = word_diff(p["chosen_response"], p["rejected_response"])
        self.query_one("#chosen-title", Static).update(Text("CHOSEN (human preferred)", style="bold green"))
        self.query_one("#rejected-title", Static).update(Text("REJECTED", style="bold red"))
        self.query_one("#chosen-text", Static).update(tc)
        self.query_one("#rejected-text", Static).update(tr)
        for side in ("chosen", "rejected"):
            self.query_one(f"#{side}-info", Static).update(self._side_info(e, side))
        self.query_one("#rewrites", Static).update(self._rewrites(e))
        self._status_base = f"word similarity {ratio:.2f} · underlined: words only on that side"
        self.set_status(status)

    def status_message(self) -> str:
        return getattr(self, "_status_msg", "")

    def set_status(self, msg: str) -> None:
        self._status_msg = msg
        base = getattr(self, "_status_base", "")
        self.query_one("#status", Static).update(Text(base + (f" · {msg}" if msg and base else msg)))

    def go_top(self) -> None:
        self.query_one("#entry-body", VerticalScroll).scroll_home(animate=False)

    def _side_info(self, e, side: str) -> Table:
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold")
        t.add_column()
        t.add_column(justify="right")
        for r in e.rewards[e.rewards["side"] == side].itertuples(index=False):
            t.add_row(str(r.role or ""), str(r.name), _num(r.reward))
        other = "rejected" if side == "chosen" else "chosen"
        for r in e.features.itertuples(index=False):
            v, w = getattr(r, side), getattr(r, other)
            diff = (v != w) and not (v != v and w != w)
            val = "-" if v is None or v != v else f"{v:g}"
            name = str(r.name) + (" ≠" if diff else "")
            t.add_row("feat" if r.role != "target" else "target", Text(name, style="bold" if diff else ""),
                      Text(val, style="bold" if diff else ""))
        return t

    def _rewrites(self, e) -> Text:
        if e.rewrites is None or len(e.rewrites) == 0:
            return Text("No rewrites yet: w rewrites the chosen response, W the rejected one.", style="dim")
        t = Text("Rewrites\n", style="bold")
        for r in e.rewrites.itertuples(index=False):
            sim = "-" if r.similarity is None or r.similarity != r.similarity else f"{r.similarity:.2f}"
            t.append(f"  {r.rewrite_id[:10]} {r.side} {r.rewriter} sim {sim}"
                     f"{'' if r.kept in (None, True) else ' (discarded)'}: ")
            t.append((r.new_response or "")[:200] + "\n")
        return t

    # -- actions -----------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_step(self, delta: int) -> None:
        el = self.entry_list
        if el is None or el.total == 0:
            return
        el.move_to(el.cursor + delta)
        pid = el.current_pair
        if pid and pid != self.pair_id:
            self.show(pid)
            self.query_one("#entry-body", VerticalScroll).scroll_home(animate=False)
        elif pid == self.pair_id:  # at an end: say so rather than do nothing
            self.show(pid, status=f"{'last' if delta > 0 else 'first'} pair of the list ({el.total:,})")

    def action_rewrite(self, side: str) -> None:
        from .rewrite import RewriteScreen

        if self.rapp.service.read_only:  # rescoring stores the new text's rewards: say so before any edit
            self.rapp.show_error("Read-only", f"{self.rapp.service.path} is open read-only (--read-only): "
                                 "rewriting stores the new text's rewards in the study. Reopen it without "
                                 "--read-only to rewrite.")
            return
        self.app.push_screen(RewriteScreen(self.pair_id, side), lambda _: self.show(self.pair_id))
