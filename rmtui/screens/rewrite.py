"""Rewrite one response and rescore it with the study's reward models.

Edit the text (manual), or apply a rule perturbation, or an LLM rewrite (when an endpoint is set in
RMTUI_LLM_BASE_URL / RMTUI_LLM_ENDPOINT / OPENAI_BASE_URL). Rescoring runs in a thread worker; the models load once, on
first use. A rescored rewrite lives only on this screen until it is kept (ctrl+s): then it is stored
in the study (and featurized). Discard (ctrl+g) clears it, and removes it from the study if it was
kept; another rescore, switching side, leaving or quitting store nothing. A rewrite identical to one
kept earlier (same pair, side, rewriter, parameters and text: the same id) shows as already kept.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Static, TextArea

from analysis.textsafe import visible, visible_line

from .common import WorkFailed, error_parts
from .dialogs import ChoiceDialog


class RewriteDone(Message):
    def __init__(self, outcome) -> None:
        super().__init__()
        self.outcome = outcome


def _num(v, nd=3) -> str:
    try:
        if v is None or v != v:
            return "-"
        return f"{float(v):+.{nd}f}"
    except (TypeError, ValueError):
        return "-"


def is_flip(v) -> bool:
    """A flip: True, or a label like ``aligned->misaligned`` (not ``stays aligned``)."""
    if isinstance(v, str):
        return "->" in v
    return bool(v)


def outcome_table(o) -> Table:
    """Old vs new rewards per model, margins and flips per role, similarity."""
    t = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, expand=False)
    for col, just in (("model", "left"), ("role", "left"), ("old", "right"), ("new", "right"), ("Δ", "right")):
        t.add_column(col, justify=just, header_style="bold")
    rewards = getattr(o, "rewards", None)
    if rewards is not None:
        for r in rewards.itertuples(index=False):
            d = None if r.old is None or r.new is None else r.new - r.old
            t.add_row(visible_line(str(r.model_id)[:24]), visible_line(r.role), _num(r.old), _num(r.new), _num(d))
    return t


def outcome_summary(o) -> Text:
    t = Text()
    mo, mn, fl = getattr(o, "margin_old", {}) or {}, getattr(o, "margin_new", {}) or {}, getattr(o, "flips", {}) or {}
    for role in sorted(set(mo) | set(mn)):
        t.append(f"{role}: margin {_num(mo.get(role), 2)} → {_num(mn.get(role), 2)}")
        v = fl.get(role)
        label = f" ({v})" if isinstance(v, str) else ""
        if is_flip(v):
            t.append("  FLIPS" + label, style="bold reverse red")
        else:
            t.append("  no flip" + label, style="dim")
        t.append("\n")
    sim = getattr(o, "similarity", None)
    t.append(f"similarity {sim:.2f}" if isinstance(sim, (int, float)) else "similarity -")
    return t


class RewriteScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "rescore", "Rescore", id="rewrite.rescore"),
        Binding("ctrl+t", "rules", "Rule rewrite", id="rewrite.rules"),
        Binding("ctrl+l", "llm", "LLM rewrite", id="rewrite.llm"),
        Binding("ctrl+s", "keep", "Keep", id="rewrite.keep"),
        Binding("ctrl+g", "discard", "Discard", id="rewrite.discard"),
        Binding("ctrl+o", "other_side", "Other side", id="rewrite.other_side"),
        Binding("escape", "back", "Back", id="rewrite.back"),
    ]

    def __init__(self, pair_id: str, side: str = "chosen") -> None:
        super().__init__()
        self.pair_id = pair_id
        self.side = side
        self.outcome = None
        self.kept = False
        self.busy = False
        self._switch_confirmed = False  # ctrl+o pressed once over an edit that was not rescored

    @property
    def rapp(self):
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="rw-head")
        with VerticalScroll(id="rw-body"):
            yield Label("Original", classes="rw-label", id="rw-original-label")
            yield Static(id="rw-original")
            yield Label("Edit, then ctrl+r to rescore", classes="rw-label")
            ta = TextArea(id="rw-edit", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
            ta.cursor_blink = False  # a steady cursor (and deterministic snapshots)
            yield ta
            with Vertical(id="rw-result-box"):
                yield Static(id="rw-result")
                yield Static(id="rw-summary")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._load_side()
        self.query_one(TextArea).focus()
        self._warm_up()

    @work(thread=True, exit_on_error=False, group="rewrite-warm-up")
    def _warm_up(self) -> None:
        """Import the robustness module (1.2-1.4 s: scoring, statsmodels) off the UI thread while the
        user edits; the first rescore stalled the UI that long when it imported it."""
        self.rapp.service.rewriter.warm_up()

    def _load_side(self) -> None:
        e = self.rapp.service.entry(self.pair_id)
        self.entry = e
        original = e.pair[f"{self.side}_response"]
        self.original = original
        m = e.metrics or {}
        self.query_one("#rw-head", Static).update(
            Text.assemble((f"Rewrite {self.side.upper()}", "bold"), f" of {self.pair_id[:12]} · margin pre ",
                          _num(m.get("margin_pre"), 2), " post ", _num(m.get("margin_post"), 2)))
        self.query_one("#rw-original-label", Label).update(f"Original {self.side} response")
        self.query_one("#rw-original", Static).update(Text(visible(original)))
        self.query_one(TextArea).text = visible(original)  # control characters shown; _edited_text maps back
        self.query_one("#rw-result", Static).update("")
        self.query_one("#rw-summary", Static).update(Text(
            "ctrl+r rescores the edited text with every RM of the study (models load once, on first use).",
            style="dim"))
        self.set_status("")

    def set_status(self, msg: str) -> None:
        self.query_one("#status", Static).update(Text(msg))

    # -- workers -----------------------------------------------------------------------------------
    def _start(self, rewriter: str, *, text: str | None = None, perturbation: str | None = None) -> None:
        # availability is checked in the worker (backend.rewrite raises a titled error): importing the
        # robustness module here would stall the UI
        if self.busy:
            self.set_status("still working…")
            return
        self.busy = True
        self.set_status(f"{rewriter}: rewriting and rescoring (loading models on first use)…")
        self.query_one("#rw-summary", Static).update(Text("Scoring…", style="bold"))
        self._work(rewriter, text, perturbation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="rewrite")
    def _work(self, rewriter: str, text: str | None, perturbation: str | None) -> None:
        backend = self.rapp.service.rewriter
        try:
            out = backend.rewrite(self.pair_id, self.side, rewriter, text=text, perturbation=perturbation,
                                  keep=False)
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))
            return
        self.post_message(RewriteDone(out))

    def on_rewrite_done(self, message: RewriteDone) -> None:
        self.busy = False
        o = message.outcome
        self.outcome = o
        self.kept = bool(getattr(o, "kept", False))
        ta = self.query_one(TextArea)
        if self._edited_text() != o.new_response:
            ta.text = visible(o.new_response)
        self.query_one("#rw-result", Static).update(outcome_table(o))
        self.query_one("#rw-summary", Static).update(outcome_summary(o))
        flips = [r for r, f in (getattr(o, "flips", {}) or {}).items() if is_flip(f)]
        self.set_status(("the pair FLIPS for " + ", ".join(flips) if flips else "no flip")
                        + (" · already kept in the study · ctrl+g removes it" if self.kept
                           else " · ctrl+s keep · ctrl+g discard"))

    def on_work_failed(self, message: WorkFailed) -> None:
        self.busy = False
        self.query_one("#rw-summary", Static).update("")
        self.set_status(f"failed: {message.title}")
        self.rapp.show_error(message.title, message.message)

    # -- actions -----------------------------------------------------------------------------------
    def _edited_text(self) -> str:
        """The editor's text; the original (or last rewrite) itself while it is shown unedited (the
        editor shows control characters visibly, and rescoring must not score the pictures)."""
        text = self.query_one(TextArea).text
        for s in (self.original, getattr(self.outcome, "new_response", None)):
            if s and text == visible(s):
                return s
        return text

    def action_rescore(self) -> None:
        text = self._edited_text()
        if not text.strip():
            self.set_status("the response is empty")
            return
        if text == self.original:
            self.set_status("edit the text first (or ctrl+t for a rule rewrite)")
            return
        self._start("manual", text=text)

    def action_rules(self) -> None:
        perts = self.rapp.service.rewriter.perturbations()
        if not perts:
            self.rapp.show_error("Rule rewrites unavailable", "no rule perturbations are installed")
            return

        def done(p: str | None) -> None:
            if p:
                self._start("rules", perturbation=p)

        self.app.push_screen(ChoiceDialog("Rule perturbation", [(p, p) for p in perts]), done)

    def action_llm(self) -> None:
        if not self.rapp.service.rewriter.llm_configured():
            self.rapp.show_error("No LLM endpoint", "Set RMTUI_LLM_BASE_URL (and RMTUI_LLM_MODEL; the key in "
                                 "OPENAI_API_KEY) to an OpenAI-compatible server, then restart rmtui explore.")
            return
        self._start("llm")

    def action_keep(self) -> None:
        if self.outcome is None:
            self.set_status("nothing to keep: rescore first (ctrl+r)")
            return
        if self.kept:
            self.set_status(f"rewrite {self.outcome.rewrite_id[:10]} is already kept in the study")
            return
        try:
            self.rapp.service.rewriter.keep(self.outcome)
        except Exception as e:
            self.rapp.show_error(*error_parts(e))
            return
        self.kept = True
        self.set_status(f"kept rewrite {self.outcome.rewrite_id[:10]} in the study")

    def action_discard(self) -> None:
        if self.outcome is None:
            self.set_status("nothing to discard")
            return
        o, was_kept = self.outcome, self.kept
        if was_kept:
            try:
                self.rapp.service.rewriter.discard(o.rewrite_id)
            except Exception as e:
                self.rapp.show_error(*error_parts(e))
                return
        self.outcome = None
        self.kept = False
        self.query_one(TextArea).text = visible(self.original)
        self.query_one("#rw-result", Static).update("")
        self.query_one("#rw-summary", Static).update("")
        self.set_status(f"discarded rewrite {o.rewrite_id[:10]}" + (" and removed it from the study" if was_kept
                                                                    else " (it was never stored)"))

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._switch_confirmed = False  # a new edit asks again

    def action_other_side(self) -> None:
        if self.busy:
            return
        text = self._edited_text()
        edited = text != self.original and (self.outcome is None or text != self.outcome.new_response)
        if edited and not self._switch_confirmed:
            self._switch_confirmed = True
            self.set_status("the edit is not rescored: ctrl+o again drops it and shows the other side")
            return
        self._switch_confirmed = False
        self.outcome = None
        self.kept = False
        self.side = "rejected" if self.side == "chosen" else "chosen"
        self._load_side()

    def action_back(self) -> None:
        if self.busy:
            self.set_status("still scoring; wait for it to finish")
            return
        self.dismiss(self.kept)
