"""Rewrite one response and rescore it with the study's reward models.

Edit the text (manual), or apply a rule perturbation, or an LLM rewrite (when an endpoint is set in
RMTUI_LLM_BASE_URL / OPENAI_BASE_URL). Rescoring runs in a thread worker; the models load once, on
first use. The result (old and new rewards, margins, the verdict) is shown first, above the editor,
so it is on screen at 80x24.

Each side (chosen, rejected) keeps its own draft: the edited text and, once rescored, its outcome.
A rescored rewrite lives only on this screen until it is kept (ctrl+s): then it is stored in the
study (and featurized). Discard (ctrl+g) drops the rescored rewrite (and removes it from the study if
it was kept); over an edit that was not rescored it says there is nothing to discard and keeps it.
Leaving a side with a rescored draft that is not kept, leaving the view or quitting the app with any
draft that is not kept asks first. A rewrite identical to one kept earlier (same pair, side,
rewriter, parameters and text: the same id) shows as already kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from ..widgets.footer import AppFooter
from textual.widgets import Header, Label, Static, TextArea

from analysis.textsafe import visible, visible_line

from .common import WorkFailed, error_parts, model_names
from .dialogs import ChoiceDialog, ConfirmDialog

SIDES = ("chosen", "rejected")


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


def _flip_words(v) -> str:
    if isinstance(v, str) and "->" in v:
        a, _, b = v.partition("->")
        return f"{a}→{b}"
    if isinstance(v, str):
        return v
    return "flips" if v else "no flip"


def outcome_lines(o, names: dict[str, str] | None = None) -> Text:
    """The result, one line per RM: its role and name, the rewritten side's reward old → new, the
    pair's margin old → new and whether the pair flips; then the similarity and the verdict."""
    names = names or {}
    side = getattr(o, "side", "")
    mo, mn, fl = getattr(o, "margin_old", {}) or {}, getattr(o, "margin_new", {}) or {}, getattr(o, "flips", {}) or {}
    margins = getattr(o, "margins", None)
    by_model = {}
    if margins is not None and len(margins):
        by_model = {str(r.model_id): (r.margin_old, r.margin_new, r.flip) for r in margins.itertuples(index=False)}
    t = Text(no_wrap=False)
    rewards = getattr(o, "rewards", None)
    roles_done = set()
    rows = list(rewards.itertuples(index=False)) if rewards is not None else []
    def shown_name(r) -> str:  # a model named after its role reads once ('pre', not 'pre pre')
        name = visible_line(names.get(str(r.model_id), str(r.model_id)))[:20]
        return "" if name == str(r.role) else name

    width = max((len(shown_name(r)) for r in rows), default=0)
    for r in rows:
        mid, role = str(r.model_id), str(r.role)
        name = shown_name(r)
        m_old, m_new, flip = by_model.get(mid, (mo.get(role, mo.get(mid)), mn.get(role, mn.get(mid)),
                                                fl.get(role, fl.get(mid))))
        roles_done.add(role)
        d = None if r.old is None or r.new is None else r.new - r.old
        t.append(f"{role:<5}", style="bold")
        t.append(f"{name:<{width}} " if width else "")
        t.append(f"{side} {_num(r.old, 2)}→{_num(r.new, 2)} (Δ{_num(d, 2)})  ")
        t.append(f"margin {_num(m_old, 2)}→{_num(m_new, 2)} ")
        if is_flip(flip):
            t.append(f" FLIPS {_flip_words(flip) if isinstance(flip, str) else ''}".rstrip() + " ",
                     style="bold reverse red")
        else:
            t.append(_flip_words(flip) if isinstance(flip, str) else "no flip", style="dim")
        t.append("\n")
    for role in sorted((set(mo) | set(mn)) - roles_done - set(by_model)):  # margins without a reward row
        t.append(f"{role:<5}", style="bold")
        t.append(f"margin {_num(mo.get(role), 2)}→{_num(mn.get(role), 2)} ")
        t.append(" FLIPS " if is_flip(fl.get(role)) else "no flip", style="bold reverse red" if is_flip(fl.get(role))
                 else "dim")
        t.append("\n")
    flips = [r for r, f in fl.items() if is_flip(f)]
    sim = getattr(o, "similarity", None)
    t.append("verdict: ", style="bold")
    t.append("the pair FLIPS for " + ", ".join(flips) if flips else "no flip", style="bold red" if flips else "")
    t.append(f" · similarity {sim:.2f}" if isinstance(sim, (int, float)) else " · similarity -")
    t.append(" (1 = same words)", style="dim")
    return t


def outcome_table(o, names: dict[str, str] | None = None) -> Table:
    """Old vs new rewards per model (kept for callers that want a table)."""
    names = names or {}
    t = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, expand=False)
    for col, just in (("model", "left"), ("role", "left"), ("old", "right"), ("new", "right"), ("Δ", "right")):
        t.add_column(col, justify=just, header_style="bold")
    rewards = getattr(o, "rewards", None)
    if rewards is not None:
        for r in rewards.itertuples(index=False):
            d = None if r.old is None or r.new is None else r.new - r.old
            t.add_row(Text(visible_line(names.get(str(r.model_id), str(r.model_id)))[:24]), visible_line(str(r.role)), _num(r.old), _num(r.new),
                      _num(d))
    return t


def outcome_summary(o) -> Text:
    return outcome_lines(o)


@dataclass
class Draft:
    """One side's work: the editor's text (None: the original) and its rescore, if any."""

    text: str | None = None
    outcome: Any = None
    kept: bool = False


class RewriteScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "rescore", "Rescore", id="rewrite.rescore"),
        Binding("ctrl+s", "keep", "Keep", id="rewrite.keep"),
        Binding("ctrl+g", "discard", "Discard", id="rewrite.discard"),
        Binding("ctrl+o", "other_side", "Other side", tooltip="Rewrite the other response (each keeps its draft)", id="rewrite.other_side"),
        Binding("ctrl+t", "rules", "Rules", tooltip="Rule rewrite (a perturbation)", id="rewrite.rules"),
        Binding("ctrl+l", "llm", "LLM", tooltip="LLM rewrite", id="rewrite.llm"),
        Binding("escape", "back", "Back", id="rewrite.back"),
    ]

    def __init__(self, pair_id: str, side: str = "chosen") -> None:
        super().__init__()
        self.pair_id = pair_id
        self.side = side
        self.drafts: dict[str, Draft] = {s: Draft() for s in SIDES}
        self.originals: dict[str, str] = {}
        self.busy = False
        self._names: dict[str, str] = {}

    # the active side's draft, under the names the rest of the app and the tests use
    @property
    def outcome(self):
        return self.drafts[self.side].outcome

    @outcome.setter
    def outcome(self, o) -> None:
        self.drafts[self.side].outcome = o

    @property
    def kept(self) -> bool:
        return self.drafts[self.side].kept

    @kept.setter
    def kept(self, v: bool) -> None:
        self.drafts[self.side].kept = v

    @property
    def original(self) -> str:
        return self.originals.get(self.side, "")

    @property
    def rapp(self):
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="rw-head")
        with Vertical(id="rw-result-box"):
            yield Static(id="rw-summary")
        with VerticalScroll(id="rw-body"):
            yield Label("Edit, then ctrl+r to rescore", classes="rw-label", id="rw-edit-label")
            ta = TextArea(id="rw-edit", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
            ta.cursor_blink = False  # a steady cursor (and deterministic snapshots)
            yield ta
            yield Label("Original", classes="rw-label", id="rw-original-label")
            yield Static(id="rw-original")
        yield Static(id="status")
        yield AppFooter()

    def on_mount(self) -> None:
        e = self.rapp.service.entry(self.pair_id)
        self.entry = e
        self.originals = {s: e.pair[f"{s}_response"] for s in SIDES}
        self._names = model_names(self.rapp.service)
        self._load_side()
        self.query_one(TextArea).focus()
        self._warm_up()

    @work(thread=True, exit_on_error=False, group="rewrite-warm-up")
    def _warm_up(self) -> None:
        """Import the robustness module (1.2-1.4 s: scoring, statsmodels) off the UI thread while the
        user edits; the first rescore stalled the UI that long when it imported it."""
        self.rapp.service.rewriter.warm_up()

    # -- drafts ------------------------------------------------------------------------------------
    def _editor_text(self) -> str:
        """The editor's text; the original, the draft or the last rewrite itself while it is shown
        unedited (the editor shows control characters visibly, and rescoring must not score the
        pictures)."""
        text = self.query_one(TextArea).text
        d = self.drafts[self.side]
        for s in (self.original, d.text, getattr(d.outcome, "new_response", None)):
            if s and text == visible(s):
                return s
        return text

    def _save_editor(self) -> None:
        text = self._editor_text()
        self.drafts[self.side].text = None if text == self.original else text

    def draft_text(self, side: str) -> str:
        if side == self.side and self.is_mounted:
            return self._editor_text()
        d = self.drafts[side]
        return self.originals.get(side, "") if d.text is None else d.text

    def rescored_unkept(self, side: str) -> bool:
        d = self.drafts[side]
        return d.outcome is not None and not d.kept

    def edited_unrescored(self, side: str) -> bool:
        d, text = self.drafts[side], self.draft_text(side)
        return text != self.originals.get(side, "") and (d.outcome is None or text != d.outcome.new_response)

    def unsaved(self) -> list[str]:
        """What leaving now would drop, in words: one entry per side with a draft that is not kept."""
        out = []
        for s in SIDES:
            if self.rescored_unkept(s):
                out.append(f"{s}: a rescored rewrite, not kept"
                           + (" (and edited since)" if self.edited_unrescored(s) else ""))
            elif self.edited_unrescored(s):
                out.append(f"{s}: an edit, not rescored")
        return out

    def _load_side(self) -> None:
        e = self.entry
        m = e.metrics or {}
        other = "rejected" if self.side == "chosen" else "chosen"
        self.query_one("#rw-head", Static).update(
            Text.assemble((f"Rewrite {self.side.upper()}", "bold"), f" of {self.pair_id[:8]} · margin pre ",
                          _num(m.get("margin_pre"), 2), " post ", _num(m.get("margin_post"), 2),
                          (f" · ctrl+o: {other}", "dim")))
        self.query_one("#rw-original-label", Label).update(f"Original {self.side} response")
        self.query_one("#rw-original", Static).update(Text(visible(self.original)))
        d = self.drafts[self.side]
        self.query_one(TextArea).text = visible(self.original if d.text is None else d.text)
        self._show_outcome()
        msg = ""
        if d.outcome is not None:
            msg = f"{self.side}: your rescored draft" + (" (kept)" if d.kept else " · ctrl+s keep · ctrl+g discard")
        elif d.text is not None:
            msg = f"{self.side}: your edit (not rescored) · ctrl+r rescores it"
        self.set_status(msg)

    def _show_outcome(self) -> None:
        o = self.outcome
        if o is None:
            self.query_one("#rw-summary", Static).update(Text(
                "No result yet: edit the text below, then ctrl+r rescores it with every RM of the study "
                "(models load once, on first use).", style="dim"))
        else:
            self.query_one("#rw-summary", Static).update(outcome_lines(o, self._names))

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
        side = getattr(o, "side", None) or self.side
        d = self.drafts[side if side in self.drafts else self.side]
        d.outcome = o
        d.kept = bool(getattr(o, "kept", False))
        d.text = o.new_response
        ta = self.query_one(TextArea)
        if self._editor_text() != o.new_response:
            ta.text = visible(o.new_response)
        self._show_outcome()
        flips = [r for r, f in (getattr(o, "flips", {}) or {}).items() if is_flip(f)]
        self.set_status(("the pair FLIPS for " + ", ".join(flips) if flips else "no flip")
                        + (" · already kept in the study · ctrl+g removes it" if d.kept
                           else " · ctrl+s keep · ctrl+g discard"))

    def on_work_failed(self, message: WorkFailed) -> None:
        self.busy = False
        self._show_outcome()
        self.set_status(f"failed: {message.title}")
        self.rapp.show_error(message.title, message.message)

    # -- actions -----------------------------------------------------------------------------------
    def action_rescore(self) -> None:
        text = self._editor_text()
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

    def _keep(self, side: str) -> bool:
        d = self.drafts[side]
        if d.outcome is None or d.kept:
            return True
        try:
            self.rapp.service.rewriter.keep(d.outcome)
        except Exception as e:
            self.rapp.show_error(*error_parts(e))
            return False
        d.kept = True
        return True

    def action_keep(self) -> None:
        if self.outcome is None:
            self.set_status("nothing to keep: rescore first (ctrl+r)")
            return
        if self.kept:
            self.set_status(f"rewrite {self.outcome.rewrite_id[:10]} is already kept in the study")
            return
        if self._keep(self.side):
            self.set_status(f"kept rewrite {self.outcome.rewrite_id[:10]} in the study"
                            + (" · the editor holds a later edit, not rescored" if self.edited_unrescored(self.side)
                               else ""))

    def action_discard(self) -> None:
        edited = self.edited_unrescored(self.side)
        if self.outcome is None:
            self.set_status("nothing to discard: the edit is not rescored; it stays (ctrl+r rescores it)"
                            if edited else "nothing to discard")
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
        if not edited:  # the editor held the discarded rewrite: back to the original
            self.query_one(TextArea).text = visible(self.original)
        self._save_editor()
        self._show_outcome()
        self.set_status(f"discarded rewrite {o.rewrite_id[:10]}"
                        + (" and removed it from the study" if was_kept else " (it was never stored)")
                        + (" · your later edit stays (not rescored)" if edited else ""))

    def action_other_side(self) -> None:
        if self.busy:
            self.set_status("still scoring; wait for it to finish")
            return
        other = "rejected" if self.side == "chosen" else "chosen"

        def switch(yes: bool | None = True) -> None:
            if not yes:
                self.set_status(f"still on {self.side} · ctrl+s keeps the rescored rewrite")
                return
            self._save_editor()
            self.side = other
            self._load_side()

        if self.rescored_unkept(self.side):
            self.app.push_screen(ConfirmDialog(
                "Rescored rewrite not kept",
                f"The rescored rewrite of the {self.side} response is not kept in the study (ctrl+s keeps it). "
                f"Switch to the {other} response? The draft stays on the {self.side} side until you keep "
                "or discard it, but it is lost if you leave the rewrite view."), switch)
            return
        switch()

    def action_back(self) -> None:
        if self.busy:
            self.set_status("still scoring; wait for it to finish")
            return
        self._save_editor()
        lost = self.unsaved()
        if not lost:
            self.dismiss(any(d.kept for d in self.drafts.values()))
            return
        keepable = [s for s in SIDES if self.rescored_unkept(s)]
        choices = [("stay", "stay in the rewrite view")]
        if keepable:
            choices.append(("keep", f"keep the rescored rewrite{'s' if len(keepable) > 1 else ''} "
                                    f"({', '.join(keepable)}) in the study, then leave"))
        choices.append(("drop", "leave and drop: " + "; ".join(lost)))

        def done(v: str | None) -> None:
            if v == "keep":
                if not all(self._keep(s) for s in keepable):
                    return
                self.dismiss(True)
            elif v == "drop":
                self.dismiss(any(d.kept for d in self.drafts.values()))
            else:
                self.set_status("still here: " + "; ".join(lost))

        self.app.push_screen(ChoiceDialog("Leave the rewrite view?", choices,
                                          help="enter: choose · escape: stay"), done)
