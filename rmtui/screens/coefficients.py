"""The feature imprint: how strongly each RM rewards each feature (pre-D, post-D, and the shift).

Significance shows by colour and by a marker (*, **, ***, ns), so it reads without colour. Every bar
is drawn on one shared scale. Enter on a row filters the entry list to pairs whose chosen and rejected
responses differ on that feature.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from analysis.significance import is_significant, significance_marker
from analysis.textsafe import visible_line

from ..widgets.table import ListTable

BAR = 12
TARGETS = ["pre", "post", "shift"]
SORTS = ["feature", "estimate", "|estimate|", "p"]


def marker(p) -> str:
    return significance_marker(p, ns="ns", missing="?")


def bar(est: float, scale: float, sig: bool, width: int = BAR) -> Text:
    half = width // 2
    n = 0 if not scale or est != est else min(half, int(round(abs(est) / scale * half)))
    style = ("green" if est > 0 else "red") if sig else "dim"
    left = ("█" * n).rjust(half) if est < 0 else " " * half
    right = ("█" * n).ljust(half) if est > 0 else " " * half
    t = Text()
    t.append(left, style=style)
    t.append("│")
    t.append(right, style=style)
    return t


def _fmt(v, nd=2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:+.{nd}f}"


def _p(v) -> str:
    if v is None or v != v:
        return "-"
    if v < 1e-16:
        return "<1e-16"
    return f"{v:.0e}" if v < 0.001 else f"{v:.3f}"


class CoefficientScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="coef.back"),
        Binding("enter", "filter_feature", "Filter list", id="coef.filter"),
        Binding("v", "cycle_target", "pre/post/shift", id="coef.target"),
        Binding("o", "cycle_sort", "Sort", id="coef.sort"),
        Binding("O", "reverse_sort", "Reverse", show=False, id="coef.reverse"),
        Binding("m", "regimes", "Regimes", id="nav.regimes"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.target: str | None = None  # None: all three
        self.sort = "feature"
        self.desc = False
        self.row_features: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="coef-head")
        yield ListTable(id="coef-table", cursor_type="row", zebra_stripes=False)
        yield Static(id="coef-legend")
        yield Footer()

    def on_mount(self) -> None:
        svc = self.app.service
        self.df = svc.imprint()
        self.fit = svc.fit()
        t = self.query_one(DataTable)
        for key, label in (("target", "RM"), ("feature", "feature"), ("est", "coef"), ("ci", "95% CI"),
                           ("p", "p adj"), ("sig", "sig"), ("bar", "shared scale")):
            t.add_column(label, key=key)
        self.refill()
        t.focus()

    def refill(self) -> None:
        t = self.query_one(DataTable)
        t.clear()
        df = self.df
        fit = self.fit
        if fit is None or len(df) == 0:
            self.query_one("#coef-head", Static).update(
                "No fit yet: run [b]rmtui fit[/b] on this study to see the feature imprint.")
            self.query_one("#coef-legend", Static).update("")
            return
        r2 = {r.target: r.r2 for r in df.drop_duplicates("target").itertuples()}
        r2 = {k: r2[k] for k in sorted(r2, key=lambda x: TARGETS.index(x) if x in TARGETS else 9)}
        se = df["se_type"].dropna().iloc[0] if df["se_type"].notna().any() else fit.get("se_type")
        n = int(df["n"].max()) if df["n"].notna().any() else fit.get("n")
        head = Text()
        head.append("Feature imprint", style="bold")
        head.append(f" · fit {fit['fit_id']} · SE {se} · n {n:,} · R² "
                    + " ".join(f"{k} {v:.2f}" for k, v in r2.items() if v == v and v is not None))
        head.append(f"\nshowing {self.target or 'pre, post, shift'} · sorted by {self.sort}"
                    f"{' (desc)' if self.desc else ''}")
        self.query_one("#coef-head", Static).update(head)
        scale = float(max(df["ci_low"].abs().max(), df["ci_high"].abs().max(), df["estimate"].abs().max()) or 1.0)
        rows = df if self.target is None else df[df["target"] == self.target]
        key = {"feature": rows["feature"], "estimate": rows["estimate"], "|estimate|": rows["estimate"].abs(),
               "p": rows["p_bonferroni"]}[self.sort]
        order = [TARGETS.index(x) if x in TARGETS else 9 for x in rows["target"]]
        rows = rows.assign(_k=key.values, _t=order).sort_values(["_t", "_k", "feature"],
                                                               ascending=[True, not self.desc, True])
        self.row_features = {}
        for i, r in enumerate(rows.itertuples(index=False)):
            sig = is_significant(r.p_bonferroni)
            style = ("bold green" if r.estimate > 0 else "bold red") if sig else "dim"
            name = ("~" if r.proxy else "") + visible_line(str(r.feature).rpartition(".")[2])
            rk = f"r{i}"
            self.row_features[rk] = str(r.feature)
            t.add_row(Text(visible_line(r.target)), Text(name[:16], style="bold" if r.role == "target" else ""),
                      Text(_fmt(r.estimate), style=style), f"[{_fmt(r.ci_low)},{_fmt(r.ci_high)}]",
                      _p(r.p_bonferroni), Text(marker(r.p_bonferroni), style=style),
                      bar(r.estimate, scale, sig), key=rk)
        self.query_one("#coef-legend", Static).update(
            f"sig: Bonferroni-adjusted p: *** <.001 ** <.01 * <.05 ns · bar: coef on one scale (±{scale:.2f}), │ = 0"
            " · ~ proxy feature · bold name: target feature")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_cycle_target(self) -> None:
        order = [None] + TARGETS
        self.target = order[(order.index(self.target) + 1) % len(order)]
        self.refill()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.refill()

    def action_reverse_sort(self) -> None:
        self.desc = not self.desc
        self.refill()

    def action_filter_feature(self) -> None:
        t = self.query_one(DataTable)
        if t.row_count == 0:
            return
        rk = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        feature = self.row_features.get(rk)
        if feature:
            self.app.filter_list(feature=feature)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_filter_feature()

    def action_regimes(self) -> None:
        from .regimes import RegimeScreen

        self.app.switch_to(RegimeScreen())
