"""Triage actions shared by the list and the entry screens, and typed worker messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.binding import Binding
from textual.message import Message

from analysis.errors import RmtuiError
from analysis.store.filters import EntryFilter
from analysis.store.triage import DEFAULT_TAGS
from analysis.textsafe import visible_line

from .dialogs import ChoiceDialog, InputDialog

if TYPE_CHECKING:  # pragma: no cover
    from ..app import RmtuiApp


class WorkFailed(Message):
    """A worker failed; the app shows title and message in a dialog."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title = title
        self.message = message


class TriageDone(Message):
    """A triage write (possibly bulk) finished in a worker."""

    def __init__(self, summary: str) -> None:
        super().__init__()
        self.summary = summary


def model_names(service) -> dict[str, str]:
    """``{model_id: name}`` of the study's models, to show names where ids (16 hex) would be."""
    try:
        df = service.models()
    except Exception:
        return {}
    return {str(r.model_id): str(r.name) for r in df.itertuples(index=False) if r.name}


def error_parts(e: BaseException) -> tuple[str, str]:
    if isinstance(e, RmtuiError):
        return e.title, e.message
    return "Unexpected error", f"{type(e).__name__}: {e}"


# the footer shows the most used keys (show=True) in the order given; the rest are in ? (help)
TRIAGE_BINDINGS = [
    Binding("s", "select('select')", "Select", id="triage.select"),
    Binding("T", "tag_custom", "Tag", tooltip="Tag with any tag (toggles it)", id="triage.tag_custom"),
    Binding("U", "undo", "Undo", id="triage.undo"),
    Binding("1", "tag(0)", f"Tag {DEFAULT_TAGS[0]}", show=False, id="triage.tag1"),
    Binding("2", "tag(1)", f"Tag {DEFAULT_TAGS[1]}", show=False, id="triage.tag2"),
    Binding("3", "tag(2)", f"Tag {DEFAULT_TAGS[2]}", show=False, id="triage.tag3"),
    Binding("4", "tag(3)", f"Tag {DEFAULT_TAGS[3]}", show=False, id="triage.tag4"),
    Binding("n", "note", "Note", show=False, id="triage.note"),
    Binding("t", "select('toggle')", "Toggle selection", show=False, id="triage.toggle"),
    Binding("u", "select('unselect')", "Unselect", show=False, id="triage.unselect"),
    Binding("g", "g_prefix", "g prefix: gg top · gs gt gu: select, toggle, unselect the whole filter", show=False,
            id="triage.g_prefix"),
]


_FAILED = object()  # TriageMixin._guard's result when the call raised (and its error was shown)


class TriageMixin:
    """Needs ``current_pair() -> str | None``, ``current_filter() -> EntryFilter``, ``after_triage(msg)``."""

    _g_at: tuple[float, str | None] | None = None  # when g was pressed, and on which pair
    G_TIMEOUT = 2.0

    @property
    def rapp(self) -> "RmtuiApp":
        return self.app  # type: ignore[attr-defined]

    def current_pair(self) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def current_filter(self) -> EntryFilter:  # pragma: no cover - overridden
        raise NotImplementedError

    def after_triage(self, summary: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _guard(self, fn, *args: Any) -> Any:
        """``fn(*args)``, or ``_FAILED`` after showing its error (never a traceback)."""
        try:
            return fn(*args)
        except Exception as e:
            title, message = error_parts(e)
            self.rapp.notify_status(f"failed: {title}: {visible_line(message)}")  # what is wrong, not a title alone
            self.rapp.show_error(title, message)
            return _FAILED

    def action_tag(self, n: int) -> None:
        self._g_pending = False
        pid = self.current_pair()
        if pid is None:
            return
        tag = DEFAULT_TAGS[n]
        on = self._guard(self.rapp.service.toggle_tag, pid, tag)
        if on is not _FAILED:
            self.after_triage(f"{'tagged' if on else 'untagged'} {pid[:8]} {tag}")

    def action_tag_custom(self) -> None:
        self._g_pending = False
        pid = self.current_pair()
        if pid is None:
            return

        def done(tag: str | None) -> None:
            if not tag:
                return
            on = self._guard(self.rapp.service.toggle_tag, pid, tag.strip())
            if on is not _FAILED:
                self.after_triage(f"{'tagged' if on else 'untagged'} {pid[:8]} {tag.strip()}")

        used = ", ".join(self.rapp.service.tags())
        self.app.push_screen(InputDialog("Tag (toggles it on this pair)", placeholder="e.g. sycophancy",
                                         help=f"known: {used} · enter: toggle · escape: cancel"), done)

    def action_note(self) -> None:
        self._g_pending = False
        pid = self.current_pair()
        if pid is None:
            return
        old = self.rapp.service.note(pid) or ""

        def done(note: str | None) -> None:
            if note is None:
                return
            try:
                self.rapp.service.set_note(pid, note)
            except Exception as e:
                self.rapp.show_error(*error_parts(e))
                return
            self.after_triage(f"note {'cleared' if not note.strip() else 'saved'} on {pid[:8]}")

        self.app.push_screen(InputDialog(f"Note on {pid[:8]}", value=old,
                                         help="enter: save (empty clears) · escape: cancel"), done)

    G_HINT = "g-: g top · s select all · t toggle all · u unselect all (in the current filter) · other key: cancel"

    @property
    def _g_pending(self) -> bool:
        """g counts only for the very next key: within 2 s and on the same pair."""
        import time

        if self._g_at is None:
            return False
        at, pid = self._g_at
        return time.monotonic() - at < self.G_TIMEOUT and pid == self.current_pair()

    @_g_pending.setter
    def _g_pending(self, on: bool) -> None:
        import time

        self._g_at = (time.monotonic(), self.current_pair()) if on else None

    def _g_continuations(self) -> set[str]:
        """The keys that continue a pending g (as the keymap has them): g itself and the select keys."""
        out = set()
        for key, ab in self.active_bindings.items():  # type: ignore[attr-defined]
            a = ab.binding.action
            if a == "g_prefix" or a.startswith("select("):
                out.add(key)
        return out

    def _g_cancel(self) -> None:
        """Drop a pending g and its hint (the hint stayed on screen after an unrelated key)."""
        self._g_at = None
        if self.status_message() == self.G_HINT:
            self.set_status("")
        elif hasattr(self, "_update_bars"):
            self._update_bars()  # type: ignore[attr-defined]

    def status_message(self) -> str:  # pragma: no cover - overridden
        return ""

    def on_key(self, event) -> None:
        if self._g_at is not None and event.key not in self._g_continuations():
            self._g_cancel()

    def _g_expire(self) -> None:
        if self._g_at is not None and not self._g_pending:
            self._g_cancel()

    def go_top(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def action_g_prefix(self) -> None:
        if self._g_pending:  # gg: to the top, as in vim and less
            self._g_cancel()
            self.go_top()
            return
        self._g_pending = True
        self.rapp.notify_status(self.G_HINT)
        self.set_timer(self.G_TIMEOUT + 0.05, self._g_expire)  # type: ignore[attr-defined]

    def action_select(self, mode: str) -> None:
        pending = self._g_pending
        self._g_pending = False
        if pending:
            if self.status_message() == self.G_HINT:
                self.set_status("")
            filt = self.current_filter()
            self.rapp.notify_status(f"{mode} every pair of the filter…")
            self._bulk_select(filt, mode)
            return
        pid = self.current_pair()
        if pid is None:
            return
        n = self._guard(lambda: self.rapp.service.select([pid], mode=mode))
        if n is not _FAILED:
            self.after_triage(f"{mode}: {pid[:8]} ({self.rapp.service.selection_count():,} selected)")

    @work(thread=True, exclusive=True, exit_on_error=False, group="triage")
    def _bulk_select(self, filt: EntryFilter, mode: str) -> None:
        try:
            n = self.rapp.service.select(filt=filt, mode=mode)
            total = self.rapp.service.selection_count()
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))  # type: ignore[attr-defined]
            return
        self.post_message(TriageDone(f"{mode}: {n:,} pairs changed ({total:,} selected)"))  # type: ignore

    def on_triage_done(self, message: TriageDone) -> None:
        self.after_triage(message.summary)

    def on_work_failed(self, message: WorkFailed) -> None:
        # not the stale "exporting…" / "select every…"; what is wrong, not a title alone
        self.rapp.notify_status(f"failed: {message.title}: {visible_line(message.message)}")
        self.rapp.show_error(message.title, message.message)

    def action_undo(self) -> None:
        self._g_pending = False
        self._undo()

    @work(thread=True, exit_on_error=False, group="triage")  # not exclusive: two U, two undos (in order:
    def _undo(self) -> None:                                 # each is one transaction under the study's lock)
        """Undo in a worker: the last action may be a selection of 160,000 pairs."""
        try:
            what = self.rapp.service.undo()
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))  # type: ignore[attr-defined]
            return
        self.post_message(TriageDone(what or "nothing to undo"))  # type: ignore[attr-defined]

    def pick_tag(self, callback, title: str = "Tag") -> None:
        counts = self.rapp.service.tag_counts()
        tags = self.rapp.service.tags()
        self.app.push_screen(ChoiceDialog(title, [(t, f"{t} ({counts.get(t, 0):,})") for t in tags]), callback)
