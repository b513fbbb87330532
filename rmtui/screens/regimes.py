"""Agreement and the regime table (the SEAL paper's Table 1), overall, by gamma and by subset.

Every count is a cell: move to it and press enter to see those pairs in the entry list.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from ..widgets.footer import AppFooter
from textual.widgets import DataTable, Header, Label, Static

from analysis.metrics.regime_names import RegimeGrid
from analysis.textsafe import visible_line

from ..widgets.entry_list import REGIME_SHORT_80, short_names
from ..widgets.table import ListTable


class RegimeScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="regimes.back"),
        Binding("c", "coefficients", "Coefs", tooltip="Coefficients (the feature imprint)", id="nav.coefficients"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], dict] = {}  # (table, row key, col key) -> filter kwargs

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="agreement")
        with VerticalScroll(id="regime-body"):
            yield Label("All pairs", classes="section")
            yield ListTable(id="t-all", cursor_type="cell")
            yield Label("By labeler preference γ (c: agrees with human, i: indifferent, r: disagrees)",
                        classes="section")
            yield ListTable(id="t-gamma", cursor_type="cell")
            yield Label("By subset", classes="section")
            yield ListTable(id="t-subset", cursor_type="cell")
        yield Static("enter on a count: those pairs · tab: next table · mis%: post-D RM prefers the "
                     "rejected side, % of its decided pairs (ties apart)", id="regime-legend")
        yield AppFooter()

    def on_mount(self) -> None:
        svc = self.app.service
        a = svc.agreement()
        t = Text()
        t.append("Agreement with the human labels", style="bold")
        if a["n"]:
            def num(v):
                return "-" if v is None else f"{v:.3f}"

            t.append(f": pre-D {num(a['pre'])} of {a['n_pre']:,} decided · post-D {num(a['post'])} of "
                     f"{a['n_post']:,} decided (agree / decided; misalignment = 1 - agreement) · RM ties pre "
                     f"{a['ties_pre']:,} post {a['ties_post']:,}"
                     f" · {a['n']:,} pairs with metrics")
            if a.get("human_ties") or a.get("split_votes"):
                t.append(f" · human ties {a['human_ties']:,} (left out) · split votes {a['split_votes']:,}")
        else:
            t.append(": no metrics yet (run rmtui fit)")
        self.query_one("#agreement", Static).update(t)
        self._fill("t-all", svc.regimes(None), None)
        self._fill("t-gamma", svc.regimes("gamma"), "gamma")
        self._fill("t-subset", svc.regimes("subset"), "subset")
        self.query_one("#t-all", DataTable).focus()

    def _fill(self, tid: str, grid: RegimeGrid, by: str | None) -> None:
        t = self.query_one(f"#{tid}", DataTable)
        cols = grid.regimes
        t.add_column(by or "", key="grp")
        for r in cols:
            t.add_column(REGIME_SHORT_80[r], key=r)
        t.add_column("total", key="total")
        t.add_column("mis%", key="mis")
        mis_by = self.app.service.misalignment(by)  # stored: 1 - agreement over decided pairs
        labels = short_names([visible_line(row.group) for row in grid.rows], 14)
        for row in grid.rows:
            g = row.group
            label = labels[visible_line(g)]
            cells = [Text(label, style="bold")]
            for r in cols:
                cells.append(Text(f"{row.counts.get(r, 0):,}", style="bold red" if r == "resists_alignment" else ""))
                self.cells[(tid, g, r)] = {"regime": r, **({by: g} if by else {})}
            cells.append(Text(f"{row.total:,}"))
            self.cells[(tid, g, "total")] = {"regime": None, **({by: g} if by else {})}
            m = (mis_by.get(str(g)) or {}).get("misalignment")
            mis = 100 * m if m is not None else row.misaligned_pct
            cells.append(Text(f"{mis:.1f}" if mis is not None else "-"))
            t.add_row(*cells, key=g)
            if by is None and row.total:
                pct = [Text("%", style="dim")] + [Text(f"{row.pct(r):.1f}", style="dim") for r in cols] \
                    + [Text("100"), Text("")]
                t.add_row(*pct, key="%")

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        tid = event.data_table.id
        key = (tid, str(event.cell_key.row_key.value), str(event.cell_key.column_key.value))
        kw = self.cells.get(key)
        if kw is None and key[2] in ("grp", "mis"):
            kw = self.cells.get((tid, key[1], "total"))
        if kw is not None:
            self.app.filter_list(**kw)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_coefficients(self) -> None:
        self.app.show_summary_screen("coefficients", switch=True)
