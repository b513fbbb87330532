"""The entry list screen: every pair of the current filter, sorted; triage and export from here."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from ..widgets.footer import AppFooter
from textual.widgets import Header

from analysis.metrics.regime_names import REGIMES
from analysis.store.filters import EntryFilter

from ..widgets.entry_list import EntryList
from ..widgets.line import Line
from .common import TRIAGE_BINDINGS, TriageMixin, WorkFailed, error_parts
from .dialogs import ChoiceDialog, ConfirmDialog, InputDialog

FILTER_FIELDS = ["regime", "subset", "split", "gamma", "feature", "tag", "heldout", "selected", "human"]
# each part of a filter and its value when the part is off
FILTER_OFF = {"regime": None, "subset": None, "split": None, "gamma": None, "feature": None, "tag": None,
              "search": None, "selected": False, "heldout": None, "human": None}


def filter_parts(filt: EntryFilter) -> list[tuple[str, str]]:
    """(field, words) of every part of the filter that is on."""
    out = []
    for f, off in FILTER_OFF.items():
        v = getattr(filt, f)
        if v == off:
            continue
        if f == "search":
            words = f"search {v!r}"
        elif f == "selected":
            words = "only selected"
        elif f == "heldout":
            words = "held out" if v else "in sample"
        else:
            words = f"{f}={v}"
        out.append((f, words))
    return out


def explain_empty(service, filt: EntryFilter, study: str = "STUDY") -> tuple[list[Text], str]:
    """Why a filter holds no pair, part by part, and how to widen it: (lines for the list, status)."""
    everything = EntryFilter(regime=None)
    n_all = service.count(everything)
    if n_all == 0:
        return ([Text("The study has no pairs yet.", style="bold"),
                 Text(f"Add some: rmtui ingest FILES... --study {study}")], "the study has no pairs")
    parts = filter_parts(filt)
    lines = [Text.assemble(("No pair matches ", "bold"), (" · ".join(w for _, w in parts), "bold yellow"),
                           f" (the study has {n_all:,} pairs).")]
    culprits, best = [], None
    for f, words in parts:
        alone = service.count(everything.replace(**{f: getattr(filt, f)}))
        without = service.count(filt.replace(**{f: FILTER_OFF[f]}))
        if alone == 0:
            culprits.append(words)
        if without and (best is None or without > best[1]):
            best = (words, without)
        lines.append(Text.assemble("  ", (words, "bold"), f": {alone:,} pairs alone · {without:,} without it",
                                   (" ← matches no pair" if alone == 0 else "", "red")))
    if culprits:
        why = f"{' and '.join(culprits)} matches no pair of the study"
    elif best:
        why = f"no pair has all of these; without {best[0]}: {best[1]:,} pairs"
    else:
        why = "no pair has all of these"
    lines.append(Text(why[0].upper() + why[1:] + "."))
    lines.append(Text("Widen it: x shows all pairs · f changes a part (\"any\" turns it off) · r cycles the "
                      "regime · / changes the search", style="dim"))
    return lines, "0 pairs: " + why + " · x all pairs · f change it"


SORT_WORDS = {"pair_id": "pair id", "subset": "subset", "split": "split", "margin_pre": "margin pre",
              "margin_post": "margin post", "regime": "regime", "gamma": "gamma (γ)", "theta": "theta (θ)",
              "heldout": "held out", "tags": "tags", "prompt": "prompt",
              "votes": "annotator agreement", "suspect": "suspect score"}


class EmptyExplained(Message):
    def __init__(self, key, lines, status: str) -> None:
        super().__init__()
        self.key = key
        self.lines = lines
        self.status = status


class ExportDone(Message):
    def __init__(self, result) -> None:
        super().__init__()
        self.result = result


class FrequencyReady(Message):
    """A frequency count (F), from its worker."""

    def __init__(self, filt: EntryFilter, column: str, rows: list[tuple[str, int]]) -> None:
        super().__init__()
        self.filt, self.column, self.rows = filt, column, rows


class SortCounted(Message):
    """The focused column's values counted over the filter, from the sort key's worker."""

    def __init__(self, filt: EntryFilter, key: str, desc: bool, counts: dict[str, int]) -> None:
        super().__init__()
        self.filt, self.key, self.desc, self.counts = filt, key, desc, counts


class ExportExists(Message):
    def __init__(self, args: dict, path: str) -> None:
        super().__init__()
        self.args = args
        self.path = path


class ListScreen(TriageMixin, Screen):
    """The entries: filter, sort, open, triage, export."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="list.open"),
        Binding("f", "filter", "Filter", id="list.filter"),
        Binding("slash", "search", "Search", id="list.search"),
        Binding("left_square_bracket", "sort(False)", "Sort", tooltip="Sort by the column, ascending", id="list.sort_asc"),
        Binding("right_square_bracket", "sort(True)", "Sort descending", show=False, id="list.sort_desc"),
        *TRIAGE_BINDINGS,
        Binding("e", "export", "Export", id="list.export"),
        Binding("c", "coefficients", "Coefs", tooltip="Coefficients (the feature imprint)", id="nav.coefficients"),
        Binding("m", "regimes", "Regimes", show=False, id="nav.regimes"),
        Binding("x", "clear_filter", "All pairs", show=False, id="list.clear"),
        Binding("r", "cycle_regime", "Next regime", show=False, id="list.regime"),
        Binding("F", "frequency", "Frequency of the column's values", show=False, id="list.frequency"),
        Binding("quotation_mark", "open_selection", "Selected of the filter", show=False, id="list.open_selection"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._status_msg = ""
        self._n_selected: int | None = None
        self._seen_triage = 0  # the service's triage_version the list last reflected

    def compose(self) -> ComposeResult:
        yield Header()
        yield Line(id="filter-bar")
        yield Line(id="list-header")
        svc = self.rapp.service
        yield EntryList(svc.order, self._rows, id="entries")
        yield Line(id="status")
        yield AppFooter()

    def _rows(self, ids: list[str]) -> list[tuple]:
        """The list's rows, the prompt of a multi-turn pair made readable: its last human turn is often
        'Okay, please do.', so the number of turns leads and a short last turn is followed by the first."""
        from analysis.store.browse import LIST_COLUMNS

        svc = self.rapp.service
        rows = svc.rows(ids)
        heads = svc.prompt_heads(ids)
        i = LIST_COLUMNS.index("prompt")
        out = []
        for r in rows:
            turns, first = heads.get(r[0], (1, ""))
            if turns > 1:
                last = (r[i] or "").strip()
                text = f"[{turns}] {last}" + (f" ‹ {first}" if len(last) < 30 and first and first != last else "")
                r = r[:i] + (text,) + r[i + 1:]
            out.append(r)
        return out

    @property
    def entries(self) -> EntryList:
        return self.query_one(EntryList)

    def on_mount(self) -> None:
        self.entries.on_load_error = lambda e: self.rapp.show_error(*error_parts(e))
        svc = self.rapp.service
        if svc.has_votes():  # A/B sets with votes or ties: show the humans' votes
            self.entries.hidden.discard("votes")
        filt = self.rapp.initial_filter
        total, empty = svc.empty_columns()  # over every pair: not the join of non_null (0.2 s at 1 M pairs)
        self.empty_columns = {k for k in empty if k != "tags"} if total else set()
        self.entries.empty_columns = self.empty_columns
        # data without splits or held-out marks: no column of '-' for them (the filter still offers them)
        self.entries.hidden |= {k for k in ("split", "heldout") if k in self.empty_columns}
        values = svc.choices("subset")
        self.entries.configure_columns(values.get("subset", []), list(svc.tag_counts()))
        hint = ""
        if total and "regime" in empty and filt.regime is not None:
            # pairs but no fit: no pair has a regime, so the default 'resists' filter would show none
            filt = filt.replace(regime=None)
            study = str(self.rapp.study_path)
            have_models = len(svc.models()) > 0
            hint = ("no fit yet, so no regimes or margins; showing all pairs · next: "
                    + ("" if have_models else f"rmtui score --study {study} --model M --role pre (and --role post), "
                       "then ") + f"rmtui fit --study {study}")
        self.entries.load(filt, now=True)  # the first rows, before the screen shows
        self.entries.focus()
        if not hint:  # an RM that cut over 5 % of its texts at its maximum length: say so first
            hint = " · ".join(svc.truncation_warnings_short())
        runs = svc.incomplete_runs()  # a failed or interrupted scoring run: its model's rewards are incomplete
        if runs:
            more = f" (and {len(runs) - 1} more: rmtui summary lists them)" if len(runs) > 1 else ""
            hint = f"incomplete: {runs[0]}{more}" + (f" · {hint}" if hint else "")
        if hint:
            self.set_status(hint)

    def on_screen_resume(self) -> None:
        self._n_selected = None  # the entry view may have changed the selection
        version = self.rapp.service.triage_version
        if self._triage_dependent() and version != self._seen_triage:  # ... and so the pairs this filter holds
            self.entries.load(keep_cursor=True)  # (not after every dialog: sorting 160k by tags takes a while)
        self._seen_triage = version
        self._update_bars()

    def _triage_dependent(self) -> bool:
        el = self.entries
        return el.filt.tag is not None or el.filt.selected or el.sort[0] == "tags"

    # -- TriageMixin hooks -------------------------------------------------------------------------
    def current_pair(self) -> str | None:
        return self.entries.current_pair

    def current_filter(self) -> EntryFilter:
        return self.entries.filt

    def after_triage(self, summary: str) -> None:
        el = self.entries
        widths = el.tags_width
        el.configure_columns(getattr(el, "_subsets", []), list(self.rapp.service.tag_counts()))
        if el.tags_width != widths:
            self._header_key = None
        if self._triage_dependent():
            el.load(keep_cursor=True)
        else:
            el.invalidate()
        self._seen_triage = self.rapp.service.triage_version
        self.set_status(summary)

    def go_top(self) -> None:
        self.entries.action_go_first()

    # -- status ------------------------------------------------------------------------------------
    def status_message(self) -> str:
        return self._status_msg

    def set_status(self, msg: str) -> None:
        self._status_msg = msg
        self._n_selected = None  # triage may have changed it
        self._update_bars()

    def on_entry_list_changed(self, event: EntryList.Changed) -> None:
        el = self.entries
        if el.total == 0:
            key = (el.filt, self.rapp.service.triage_version)
            if key != getattr(self, "_explained", None):
                self._explained = key
                el.set_empty_message([Text("No pair matches this filter; counting which part empties it…")])
                self._explain(el.filt, key)  # up to two counts per part of the filter: in a worker
        else:
            self._explained = None
            if self._status_msg.startswith("0 pairs: "):
                self._status_msg = ""
        self._update_bars()

    @work(thread=True, exclusive=True, exit_on_error=False, group="explain-empty")
    def _explain(self, filt: EntryFilter, key) -> None:
        try:
            lines, status = explain_empty(self.rapp.service, filt, str(self.rapp.study_path))
        except Exception as e:
            lines, status = [Text(f"No pair matches this filter ({error_parts(e)[0]})")], "0 pairs"
        self.post_message(EmptyExplained(key, lines, status))

    def on_empty_explained(self, message: "EmptyExplained") -> None:
        el = self.entries
        if el.total or message.key != getattr(self, "_explained", None):
            return  # the filter changed meanwhile
        el.set_empty_message(message.lines)
        self._status_msg = message.status
        self._update_bars()

    def _update_bars(self) -> None:
        if not self.is_mounted:
            return
        el = self.entries
        self.query_one("#filter-bar", Line).set(
            Text.assemble(("Filter", "bold"), f" {el.filt.describe()} · ", (f"{el.total:,}", "bold"), " pairs"))
        hkey = (el.content_width(), el.sort, el.col, el.hscroll, el.tags_width)
        if hkey != getattr(self, "_header_key", None):
            self._header_key = hkey
            self.query_one("#list-header", Line).set(el.header_text(el.content_width()))
        pos = f"{el.cursor + 1:,}/{el.total:,}" if el.total else "0/0"
        if self._n_selected is None:
            self._n_selected = self.rapp.service.selection_count()
        g = (" · ", ("g-", "bold")) if self._g_pending else ()
        if self._status_msg:
            msg = f" · {self._status_msg}"
        else:  # the focused column in words, and where the other columns are
            from .glossary import COLUMN_MEANING

            key = el.column_key
            meaning = COLUMN_MEANING.get(key, key)
            if key in self.empty_columns:
                meaning += " · empty in this study"
            note = el.columns_note(el.content_width())
            msg = f" · {meaning}" + (f" · {note}" if note else "")
        self.query_one("#status", Line).set(Text.assemble(f"row {pos} · selected {self._n_selected:,}", *g, msg))

    # -- actions -----------------------------------------------------------------------------------
    def action_open(self) -> None:
        pid = self.entries.current_pair
        if pid is None:
            self.set_status("no pair here: change the filter (f, x)")
            return
        from .entry import EntryScreen

        self._status_msg = ""  # what it says now is stale once the entry view has triaged
        self.app.push_screen(EntryScreen(pid, self.entries))

    def apply_filter(self, filt: EntryFilter) -> None:
        self.entries.load(filt)
        self.set_status("")

    def action_clear_filter(self) -> None:
        self.apply_filter(EntryFilter(regime=None))

    def action_cycle_regime(self) -> None:
        order = [None] + REGIMES
        cur = self.entries.filt.regime
        nxt = order[(order.index(cur) + 1) % len(order)] if cur in order else None
        self.apply_filter(self.entries.filt.replace(regime=nxt))

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text is None:
                return
            self.apply_filter(self.entries.filt.replace(search=text.strip() or None))

        self.app.push_screen(InputDialog("Search context and responses", value=self.entries.filt.search or "",
                                         help="case-insensitive substring · empty: no search · escape: cancel"),
                             done)

    def action_sort(self, desc: bool) -> None:
        """Sort by the focused column, once a worker has counted its values over the filter (a count
        over every pair at a million: 0.1-0.5 s, so never on the UI thread)."""
        el = self.entries
        key = el.column_key
        if key == "selected":
            key = "pair_id"
        self.set_status(f"sorting by {SORT_WORDS.get(key, key)}…")
        self._count_sort_values(el.filt, key, desc)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sort-check")
    def _count_sort_values(self, filt: EntryFilter, key: str, desc: bool) -> None:
        try:
            counts = self.rapp.service.non_null(filt)
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))
            return
        self.post_message(SortCounted(filt, key, desc, counts))

    def on_sort_counted(self, message: "SortCounted") -> None:
        el, key, desc, counts = self.entries, message.key, message.desc, message.counts
        if message.filt != el.filt:  # the filter changed while counting
            return
        words = SORT_WORDS.get(key, key)
        have = counts.get(key, counts["total"])
        if counts["total"] and have == 0:  # sorting by it would leave the rows as they are: say so
            why = " (no target-label features: see the glossary, i)" if key == "gamma" else ""
            self.set_status(f"not sorted: no pair here has a {words} value{why}; "
                            f"still sorted by {SORT_WORDS.get(el.sort[0], el.sort[0])}")
            return
        el.load(sort=(key, desc))
        missing = counts["total"] - have
        self.set_status(f"sorted by {words} {'descending' if desc else 'ascending'}"
                        + (f" · {missing:,} pair{'s' if missing != 1 else ''} without a value last" if missing else ""))

    def action_frequency(self) -> None:
        """VisiData's F: the current column's values over this filter, with counts; enter drills down."""
        el, svc = self.entries, self.rapp.service
        column = el.column_key
        if column not in svc.frequency_columns():
            words = ", ".join(SORT_WORDS.get(c, c) for c in svc.frequency_columns())
            self.set_status(f"F counts the values of a column ({words}): move to one with h / l "
                            f"(now on {SORT_WORDS.get(column, column)})")
            return
        self.set_status(f"counting {column} over {el.filt.describe()}…")
        self._count_frequency(el.filt, column)

    @work(thread=True, exclusive=True, exit_on_error=False, group="frequency")
    def _count_frequency(self, filt: EntryFilter, column: str) -> None:
        try:
            rows = self.rapp.service.frequency(filt, column)
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))
            return
        self.post_message(FrequencyReady(filt, column, rows))

    def on_frequency_ready(self, message: FrequencyReady) -> None:
        el, svc, column, rows = self.entries, self.rapp.service, message.column, message.rows
        if message.filt != el.filt:  # the filter changed while counting
            return
        self.set_status("")
        total = sum(n for _, n in rows) or 1
        width = max((len(v) for v, _ in rows), default=0)
        choices = [(v, f"{v:<{width}}  {n:>8,}  {100 * n / total:5.1f}%") for v, n in rows]

        def done(value: str | None) -> None:
            if value is None:
                return
            new = svc.drill_down(el.filt, column, value)
            if new is None:
                self.set_status(f"no filter for {column} = {value}")
                return
            self.apply_filter(new)

        self.app.push_screen(ChoiceDialog(f"{column} over {el.filt.describe()} ({el.total:,} pairs)", choices,
                                          help="enter: only these pairs · escape: back"), done)

    def action_open_selection(self) -> None:
        """VisiData's ": the selected pairs of this filter (again: the filter as it was)."""
        filt = self.entries.filt
        self.apply_filter(filt.replace(selected=not filt.selected))

    def action_filter(self) -> None:
        filt = self.entries.filt

        def shown(field: str) -> str:
            v = getattr(filt, field)
            if field == "heldout":
                return "any" if v is None else ("held out" if v else "in sample")
            if field == "selected":
                return "only selected" if v else "any"
            return "any" if v is None else str(v)

        fields = [(f, f"{f:<9} {shown(f)}") for f in FILTER_FIELDS]
        dialog = getattr(self, "_field_dialog", None)  # built once, then reused with the filter's values
        if dialog is None:
            dialog = self._field_dialog = ChoiceDialog("Filter: pick a field", fields)
            self.app.install_screen(dialog, name=f"filter-fields-{id(self)}")
        else:
            dialog.reset(fields)
        self.app.push_screen(dialog, self._pick_value)

    def _pick_value(self, field: str | None) -> None:
        if field is None:
            return
        filt = self.entries.filt
        if field == "heldout":
            choices = [("any", "any"), ("held", "held out"), ("in", "in sample")]
            cur = "any" if filt.heldout is None else ("held" if filt.heldout else "in")
        elif field == "selected":
            choices = [("any", "any"), ("only", "only selected")]
            cur = "only" if filt.selected else "any"
        else:
            values = self.rapp.service.choices(field).get(field, [])
            choices = [("\0any", "any")] + [(v, v) for v in values]
            cur = getattr(filt, field) or "\0any"

        def done(v: str | None) -> None:
            if v is None:
                return
            if field == "heldout":
                new = filt.replace(heldout=None if v == "any" else v == "held")
            elif field == "selected":
                new = filt.replace(selected=v == "only")
            else:
                new = filt.replace(**{field: None if v == "\0any" else v})
            self.apply_filter(new)

        help = ""
        if field == "gamma" and "gamma" in getattr(self, "empty_columns", ()):
            help = ("no pair has a γ: γ compares the target labels (harmless, helpful) of the two sides, and this "
                    "study has none; featurize with a target labeler, then rmtui fit · glossary: i")
        self.app.push_screen(ChoiceDialog(f"Filter by {field}", choices, current=cur, help=help), done)

    def action_coefficients(self) -> None:
        self.app.show_summary_screen("coefficients")

    def action_regimes(self) -> None:
        self.app.show_summary_screen("regimes")

    # -- export ------------------------------------------------------------------------------------
    def action_export(self) -> None:
        svc = self.rapp.service
        nsel = svc.selection_count()
        choices = [("selected", f"selected pairs ({nsel:,})"),
                   ("tagged", "pairs with a tag…"),
                   ("filtered", f"the current filter ({self.entries.total:,}: {self.entries.filt.describe()})")]

        def scope_done(scope: str | None) -> None:
            if scope is None:
                return
            if scope == "selected" and not nsel:
                self.set_status("nothing to export: no pair is selected (s selects, g s selects the filter)")
                return
            if scope == "filtered" and not self.entries.total:
                self.set_status("nothing to export: the filter holds no pairs")
                return
            if scope == "tagged":
                self.pick_tag(lambda tag: tag and self._ask_path(scope, tag), "Export pairs with tag")
            else:
                self._ask_path(scope, None)

        self.app.push_screen(ChoiceDialog("Export which pairs?", choices), scope_done)

    def _ask_path(self, scope: str, tag: str | None) -> None:
        def done(path: str | None) -> None:
            if not path:
                return
            args = {"scope": scope, "tag": tag, "path": path.strip(), "filt": self.entries.filt,
                    "sort": self.entries.sort}
            self.set_status(f"exporting to {path.strip()}…")
            self.run_export(args, False)

        self.app.push_screen(InputDialog("Export to file (.jsonl .csv .md .parquet)", value=self.rapp.export_default,
                                         help="the extension picks the format · enter: export · escape: cancel"),
                             done)

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def run_export(self, args: dict, overwrite: bool) -> None:
        from analysis.report.export import ExportExistsError

        try:
            res = self.rapp.service.export(args["scope"], None, args["path"], filt=args["filt"], sort=args["sort"],
                                           tag=args["tag"], overwrite=overwrite)
        except ExportExistsError as e:
            self.post_message(ExportExists(args, str(e.path)))
            return
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))
            return
        self.post_message(ExportDone(res))

    def on_export_exists(self, message: ExportExists) -> None:
        def done(yes: bool | None) -> None:
            if yes:
                self.run_export(message.args, True)
            else:
                self.set_status("export cancelled: file exists")

        self.app.push_screen(ConfirmDialog("File exists", f"{message.path} exists. Overwrite it?"), done)

    def on_export_done(self, message: ExportDone) -> None:
        r = message.result
        pairs = f"{r.n:,} pair{'s' if r.n != 1 else ''}"
        self.set_status(f"exported {pairs} to {r.path.name} ({r.fmt})")
        self.notify(f"Exported {pairs} to {r.path}", title="Export", markup=False)
