"""One entry, laid out for 24 rows: the last human turn and both responses first (side by side when
wide, else one above the other), the earlier turns folded to one line and a long last turn to a few
lines that ``z`` unfolds, then one line per RM (rewards and margin) and a compact table of the features
on which the two responses differ. Each response is a pane with a capped share of the height that
scrolls on its own (``o`` moves between them) and says how much more there is ("… 42 more lines"), so
CHOSEN and REJECTED are both on the first screen at any size from 80x24."""

from __future__ import annotations

import re

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical, VerticalScroll
from textual.screen import Screen
from ..widgets.footer import AppFooter
from textual.widgets import Header, Static

from analysis.store.filters import EntryFilter
from analysis.textsafe import visible, visible_line

from ..widgets.diff import word_diff
from ..widgets.entry_list import REGIME_WORDS
from .common import TRIAGE_BINDINGS, TriageMixin, error_parts

NARROW = 100
LAST_TURN_LINES = 3   # a folded last human turn shows at most this many lines (the last one says how many more)
PANE_MIN_TEXT = 2     # a response pane shows at least this many lines of its text
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


def split_context(context: str) -> tuple[str, str, int]:
    """(earlier turns, the last human turn, number of earlier turns). A context without turn markers
    is all 'last turn'."""
    c = (context or "").strip()
    i = c.rfind("Human:")
    if i <= 0:
        return "", c, 0
    earlier, last = c[:i].strip(), c[i:].strip()
    n = len(_TURN.findall(earlier)) or 1
    return earlier, last, n


def _num(v, nd=3) -> str:
    try:
        if v is None or v != v:
            return "-"
    except TypeError:
        return "-"
    return f"{v:+.{nd}f}"


def _val(v) -> str:
    try:
        if v is None or v != v:
            return "-"
    except TypeError:
        return "-"
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def score_lines(e, show_ids: bool = False) -> Text:
    """One line per RM: role, name, reward of each side, margin (chosen − rejected) and what it prefers."""
    t = Text()
    rw = e.rewards
    if rw is None or len(rw) == 0:
        return Text("No rewards: score the study (rmtui score), then rmtui fit.", style="dim")
    seen = []
    for mid in rw["model_id"]:
        if mid not in seen:
            seen.append(mid)
    names = {str(r.model_id): (visible_line(str(r.name)) if r.name else str(r.model_id)) for r in rw.itertuples(index=False)}
    roles = {str(r.model_id): str(r.role or "") for r in rw.itertuples(index=False)}
    for mid in list(names):  # a model named after its role ('pre', embedded:pre) reads once: 'pre chosen ...'
        if names[mid] == roles[mid]:
            names[mid] = ""
    width = min(24, max(len(names[str(m)]) for m in seen))
    for mid in seen:
        rows = rw[rw["model_id"] == mid]
        side = {r.side: r.reward for r in rows.itertuples(index=False)}
        role = str(rows["role"].iloc[0] or "")
        c, r = side.get("chosen"), side.get("rejected")
        m = None if c is None or r is None or c != c or r != r else c - r
        name = names[str(mid)][:width]
        t.append(f"{role:<5}", style="bold")
        t.append(f"{name:<{width}} " if width else "")
        t.append(f"chosen {_num(c, 2)}  rejected {_num(r, 2)}  margin ")
        t.append(_num(m, 2), style="bold red" if m is not None and m < 0 else "bold")
        if m is None:
            t.append("")
        elif m > 0:
            t.append(" ✓ agrees", style="green")
        elif m < 0:
            t.append(" ✗ disagrees", style="red")
        else:
            t.append(" = tie", style="magenta")
        if show_ids:
            t.append(f"  id {mid}", style="dim")
        t.append("\n")
    t.rstrip()
    return t


def feature_table(e) -> tuple[Table | Text, int]:
    """The features on which chosen and rejected differ (feature, chosen, rejected) and how many are
    equal on both sides."""
    f = e.features
    if f is None or len(f) == 0:
        return Text("No features: rmtui featurize adds them.", style="dim"), 0
    t = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="bold")
    t.add_column("feature differs", no_wrap=True)
    t.add_column("chosen", justify="right", style="green")
    t.add_column("rejected", justify="right", style="red")
    equal = 0
    for r in f.itertuples(index=False):
        v, w = r.chosen, r.rejected
        same = (v == w) or (v != v and w != w) or (v is None and w is None)
        if same:
            equal += 1
            continue
        name = ("~" if getattr(r, "proxy", False) else "") + visible_line(str(r.name))
        t.add_row(Text(name, style="bold" if r.role == "target" else ""), _val(v), _val(w))
    if equal == len(f):
        return Text(f"No feature differs ({equal} features, all equal on both sides).", style="dim"), equal
    return t, equal


def votes_words(p: dict) -> Text:
    """The humans' labels in the entry header: the votes and their agreement where several people
    labelled the pair, the winner where one did ("one label: A"), nothing without votes."""
    if p.get("votes_a") is None:
        return Text("")
    va, vb, vt = int(p["votes_a"] or 0), int(p["votes_b"] or 0), int(p.get("votes_tie") or 0)
    if va + vb + vt == 1:
        return Text(" · one label: " + ("A" if va else "B" if vb else "tie"))
    return Text(f" · votes A {va} B {vb}" + (f" tie {vt}" if vt else "")
                + f" (agreement {_num(p.get('annotator_agreement'), 2)})",
                style="yellow" if (p.get("annotator_agreement") or 1) < 1 else "")


def more_lines_label(total: int, shown: int, top: int) -> str:
    """What a response pane's lower border says: how many lines lie below the view ("… 42 more
    lines"), "end" once scrolled to the bottom of a long text, nothing when it all fits."""
    below = max(0, total - top - shown)
    if below:
        return f"… {below} more line{'s' if below != 1 else ''}"
    return "end" if top > 0 else ""


def fold_lines(text: Text, width: int, keep: int, console) -> tuple[Text, int]:
    """``text`` wrapped to ``width``, cut to ``keep`` lines when longer (the last kept line then says
    how many more there are and that z shows them); and how many lines were left out."""
    lines = text.wrap(console, max(10, width))
    if len(lines) <= keep:
        return text, 0
    kept = lines[: max(1, keep - 1)]
    hidden = len(lines) - len(kept)
    out = Text("\n").join(kept)
    out.append(f"\n… {hidden} more line{'s' if hidden != 1 else ''} of this turn · z shows it all", style="dim")
    return out, hidden


class SidePane(VerticalScroll):
    """One response's text: scrolls on its own, and keeps its pane's lower border saying how much of
    the text lies below the view."""

    DEFAULT_CSS = """
    SidePane { height: auto; scrollbar-size-vertical: 1; }
    """

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.update_label()

    def on_resize(self, event) -> None:
        self.update_label()

    def update_label(self) -> None:
        side = self.parent
        if side is None:
            return
        side.border_subtitle = more_lines_label(self.virtual_size.height, self.scrollable_content_region.height,
                                                round(self.scroll_y))


class EntryScreen(TriageMixin, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="entry.back"),
        Binding("j", "step(1)", "Next", id="entry.next"),
        Binding("k", "step(-1)", "Prev", id="entry.prev"),
        Binding("o", "other_response", "Other", tooltip="Move to the other response (↑ ↓ scroll it)",
                id="entry.other_response"),
        Binding("z", "fold", "Context", tooltip="Unfold / fold the earlier turns and a long last turn", id="entry.fold"),
        Binding("w", "rewrite('chosen')", "Rewrite", tooltip="Rewrite the chosen response", id="entry.rewrite_chosen"),
        Binding("W", "rewrite('rejected')", "Rewrite rejected", show=False, id="entry.rewrite_rejected"),
        Binding("I", "toggle_ids", "Model ids", tooltip="Show / hide the models' ids", show=False, id="entry.ids"),
        *TRIAGE_BINDINGS,
    ]

    def __init__(self, pair_id: str, entry_list=None) -> None:
        super().__init__()
        self.pair_id = pair_id
        self.entry_list = entry_list
        self.entry = None
        self.unfolded = False
        self.show_ids = False
        self._at_rejected = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="entry-head")
        with VerticalScroll(id="entry-body"):
            yield Static(id="context-fold")
            yield Static(id="last-turn")
            with Container(id="sides"):
                with Vertical(classes="side", id="side-chosen"):
                    yield Static(id="chosen-title", classes="side-title")
                    with SidePane(id="chosen-pane", classes="side-pane"):
                        yield Static(id="chosen-text", classes="side-text")
                with Vertical(classes="side", id="side-rejected"):
                    yield Static(id="rejected-title", classes="side-title")
                    with SidePane(id="rejected-pane", classes="side-pane"):
                        yield Static(id="rejected-text", classes="side-text")
            yield Static(id="scores")
            yield Static(id="features")
            yield Static(id="features-legend")
            yield Static(id="rewrites")
        yield Static(id="status")
        yield AppFooter()

    def on_mount(self) -> None:
        self._layout(self.size.width)
        self.show(self.pair_id)
        self.query_one("#entry-body").focus()

    def on_resize(self, event) -> None:
        self._layout(event.size.width)
        if self.entry is not None:
            self._show_context()
        self.call_after_refresh(self._fit_panes)

    def _layout(self, width: int) -> None:
        self.set_class(width < NARROW, "narrow")

    def _body_size(self) -> tuple[int, int]:
        """The body's inner width and height: measured once laid out, else estimated from the screen
        (header, two head lines, status and footer around it; one column of padding each side)."""
        body = self.query_one("#entry-body", VerticalScroll)
        region = body.scrollable_content_region
        if region.width > 0 and region.height > 0:
            return region.width, region.height
        return max(20, self.size.width - 2), max(8, self.size.height - 5)

    def _fit_panes(self) -> None:
        """Cap each response pane's height so that both fit on the first screen under the context:
        one above the other when narrow (half the rest each), side by side when wide (all of it)."""
        if not self.is_attached:
            return
        width, height = self._body_size()
        rest = height if self.unfolded else max(0, height - getattr(self, "_top_rows", 0))
        if self.has_class("narrow"):  # half each; a short text leaves its slack to the other
            inner = max(10, width - 5)  # less the pane's borders, padding and scrollbar
            need = [len(self._wrapped_rows(s, inner)) for s in ("chosen", "rejected")]
            half = max(PANE_MIN_TEXT, rest // 2 - 3)
            caps = [half, half]
            for i in (0, 1):
                if need[i] < half:
                    caps[1 - i] = max(PANE_MIN_TEXT, rest - 3 - (need[i] + 3))
        else:
            caps = [max(PANE_MIN_TEXT, rest - 3)] * 2  # side by side: all of it, less borders and title
        for sel, text_rows in zip(("#chosen-pane", "#rejected-pane"), caps):
            pane = self.query_one(sel, SidePane)
            if pane.styles.max_height is None or pane.styles.max_height.value != text_rows:
                pane.styles.max_height = text_rows
            pane.update_label()

    def _wrapped_rows(self, side: str, width: int) -> list:
        text = getattr(self, "_side_texts", {}).get(side)
        return [] if text is None else list(text.wrap(self.app.console, width))

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
        if pair_id != self.pair_id:
            self.unfolded = False
        self.pair_id = pair_id
        self.entry = e
        p, m = e.pair, e.metrics or {}
        regime = m.get("regime")
        head = Text()
        head.append(f"{pair_id[:8]}", style="bold")
        head.append(" · ")
        head.append(visible_line(str(p.get("subset") or "-")))
        if p.get("split"):  # data without splits: no '/-'
            head.append("/")
            head.append(visible_line(str(p["split"])))
        if p.get("heldout") is not None:  # data without held-out marks: nothing rather than 'unknown'
            head.append(" · held out" if p["heldout"] else " · in sample")
        head.append(" · ")
        head.append(REGIME_WORDS.get(regime, regime or "no regime"), style="bold")
        if p.get("identical"):
            head.append(" · IDENTICAL TEXTS", style="bold yellow")
        head.append(votes_words(p))
        if p.get("human_tie"):
            head.append(" · HUMAN TIE (left out of agreement)", style="bold cyan")
        head.append("\n")
        head.append(f"γ {m.get('gamma') or '-'} · margin pre {_num(m.get('margin_pre'), 2)}"
                    f" → post {_num(m.get('margin_post'), 2)} · ")
        head.append("tags ", style="bold")
        head.append(visible_line(", ".join(e.tags)) if e.tags else "-", style="magenta")
        head.append(" · selected" if e.selected else "")
        head.append(" · note ", style="bold")
        head.append(visible(e.note) or "-")
        self.query_one("#entry-head", Static).update(head)
        self._show_context()
        tc, tr, ratio = word_diff(visible(p["chosen_response"]), visible(p["rejected_response"]))
        if p.get("human_tie"):  # stored chosen = A, rejected = B by convention: neither was preferred
            self.query_one("#chosen-title", Static).update(Text.assemble(
                ("A", "bold cyan"), " (humans: tie)"))
            self.query_one("#rejected-title", Static).update(Text.assemble(("B", "bold cyan"), " (humans: tie)"))
        else:
            self.query_one("#chosen-title", Static).update(Text.assemble(
                ("CHOSEN", "bold green"), " (the human preferred it)"))
            self.query_one("#rejected-title", Static).update(Text.assemble(("REJECTED", "bold red")))
        self._side_texts = {"chosen": tc, "rejected": tr}
        self.query_one("#chosen-text", Static).update(tc)
        self.query_one("#rejected-text", Static).update(tr)
        for sel in ("#chosen-pane", "#rejected-pane"):
            self.query_one(sel, SidePane).scroll_home(animate=False)
        self.query_one("#scores", Static).update(score_lines(e, self.show_ids))
        table, equal = feature_table(e)
        self.query_one("#features", Static).update(table)
        self.query_one("#features-legend", Static).update(Text(
            (f"{equal} more feature{'s' if equal != 1 else ''} equal on both sides · " if equal and not
             isinstance(table, Text) else "")
            + "margin = chosen − rejected, ✓ the RM agrees with the human · bold: target label (γ compares "
            "these) · ~ proxy (an offline stand-in) · i: glossary", style="dim"))
        self.query_one("#rewrites", Static).update(self._rewrites(e))
        self._status_base = f"word similarity {ratio:.2f} (1 = same words) · underlined: words only on that side"
        self.set_status(status)
        self._fit_panes()
        self.call_after_refresh(self._fit_panes)

    def _show_context(self) -> None:
        earlier, last, n = split_context(visible(self.entry.pair["context"]))
        fold = self.query_one("#context-fold", Static)
        if not earlier:
            fold.display = False
        else:
            fold.display = True
            if self.unfolded:
                fold.update(conversation_text(earlier) + Text("\n(z folds the earlier turns)", style="dim"))
            else:
                fold.update(Text.assemble(("▸ ", "bold"), (f"{n} earlier turn{'s' if n != 1 else ''}", "bold"),
                                          " folded · z shows them", style="dim"))
        turn = conversation_text(last)
        self._last_hidden = 0
        width = self._body_size()[0]
        if not self.unfolded:
            turn, self._last_hidden = fold_lines(turn, width, LAST_TURN_LINES, self.app.console)
        self._top_rows = (1 if earlier else 0) + len(turn.wrap(self.app.console, max(10, width)))
        self.query_one("#last-turn", Static).update(turn)

    def status_message(self) -> str:
        return getattr(self, "_status_msg", "")

    def set_status(self, msg: str) -> None:
        self._status_msg = msg
        base = getattr(self, "_status_base", "")
        self.query_one("#status", Static).update(Text(base + (f" · {msg}" if msg and base else msg)))

    def go_top(self) -> None:
        body = self.query_one("#entry-body", VerticalScroll)
        body.scroll_home(animate=False)
        body.focus()
        self._at_rejected = False

    def _rewrites(self, e) -> Text:
        if e.rewrites is None or len(e.rewrites) == 0:
            return Text("No rewrites yet: w rewrites the chosen response, W the rejected one.", style="dim")
        t = Text("Rewrites\n", style="bold")
        for r in e.rewrites.itertuples(index=False):
            sim = "-" if r.similarity is None or r.similarity != r.similarity else f"{r.similarity:.2f}"
            t.append(f"  {r.rewrite_id[:10]} {r.side} {visible_line(r.rewriter)} sim {sim}"
                     f"{'' if r.kept in (None, True) else ' (discarded)'}: ")
            t.append(visible((r.new_response or "")[:200]) + "\n")
        return t

    # -- actions -----------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_fold(self) -> None:
        earlier, _, _ = split_context(self.entry.pair["context"]) if self.entry else ("", "", 0)
        if not earlier and not self.unfolded and not getattr(self, "_last_hidden", 0):
            self.set_status("no earlier turns: the conversation is the one human turn shown")
            return
        self.unfolded = not self.unfolded
        self._show_context()
        self.call_after_refresh(self._fit_panes)

    def action_other_response(self) -> None:
        """Focus the other response's pane (↑ ↓ PgUp PgDn then scroll it) and bring it into view."""
        body = self.query_one("#entry-body", VerticalScroll)
        self._at_rejected = not self._at_rejected
        side = "rejected" if self._at_rejected else "chosen"
        body.scroll_to_widget(self.query_one(f"#side-{side}"), animate=False, top=self.unfolded)
        self.query_one(f"#{side}-pane", SidePane).focus()

    def action_toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        if self.entry is not None:
            self.query_one("#scores", Static).update(score_lines(self.entry, self.show_ids))

    def action_step(self, delta: int) -> None:
        el = self.entry_list
        if el is None or el.total == 0:
            return
        el.move_to(el.cursor + delta)
        pid = el.current_pair
        if pid and pid != self.pair_id:
            self.show(pid)
            self.go_top()
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
