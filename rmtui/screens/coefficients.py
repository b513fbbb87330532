"""The feature imprint: how strongly each RM rewards each feature (pre-D, post-D, and the shift).

Significance shows by colour and by a marker (*, **, ***, ns), so it reads without colour. Every bar
is drawn on one shared scale. Enter on a row filters the entry list to pairs whose chosen and rejected
responses differ on that feature.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from ..widgets.footer import AppFooter
from textual.widgets import DataTable, Header, Static

from analysis.metrics.significance import is_significant, significance_marker
from analysis.textsafe import visible_line

from ..widgets.table import ListTable

BAR = 12
TARGETS = ["pre", "post", "shift"]
SORTS = ["feature", "estimate", "|estimate|", "p"]
SORT_WORDS = {"feature": "feature name", "estimate": "coefficient", "|estimate|": "size of the coefficient",
              "p": "p adj"}
# standardized coefficients (per standard deviation of the feature), where the fit stores them
STD_COLUMNS = ("estimate_per_sd", "estimate_std", "std_estimate", "beta_std")
NAME_WIDTH = 20


def feature_names(features: list[str], width: int = NAME_WIDTH) -> dict[str, str]:
    """Readable, distinct names: the featurizer prefix left out unless two featurizers share a name;
    names longer than ``width`` cut in the middle, so both ends show."""
    bare = {f: f.rpartition(".")[2] for f in features}
    counts: dict[str, int] = {}
    for b in bare.values():
        counts[b] = counts.get(b, 0) + 1
    out = {}
    for f in features:
        n = bare[f] if counts[bare[f]] == 1 else f
        if len(n) > width:
            h = (width - 1) // 2
            n = n[:h] + "…" + n[-(width - 1 - h):]
        out[f] = n
    return out


def dropped_features(fit: dict | None, imprint_features: set[str], defs: list[str]) -> list[tuple[str, str]]:
    """(feature, why) of the features the fit was asked for (or the study has) that are not in its
    imprint: constant or collinear ones the fit dropped, with its own words where it recorded them."""
    import json

    if fit is None:
        return []
    msgs = fit.get("messages") or []
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs)
        except ValueError:
            msgs = [msgs]
    opts = fit.get("options") or {}
    if isinstance(opts, str):
        try:
            opts = json.loads(opts)
        except ValueError:
            opts = {}
    asked = list(opts.get("features_resolved") or opts.get("features") or defs)
    why: dict[str, str] = {}
    for m in msgs:
        m = str(m)
        i = m.find("dropped feature ")
        if i >= 0:
            rest = m[i + len("dropped feature "):]
            name, _, reason = rest.partition(": ")
            why[name.strip()] = reason.strip() or "dropped by the fit"
    out = []
    for f in asked:
        bare = f.rpartition(".")[2]
        if f in imprint_features or bare in imprint_features:
            continue
        out.append((f, why.get(f) or why.get(bare) or "not in the fit"))
    for f, reason in why.items():
        if f not in asked and f not in imprint_features:
            out.append((f, reason))
    return out


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


class FitRead(Message):
    """The imprint, the fit, the model names and the feature definitions, read by a worker."""

    def __init__(self, df, fit, names, defs) -> None:
        super().__init__()
        self.df, self.fit, self.names, self.defs = df, fit, names, defs


class CoefficientScreen(Screen):
    """Built once and reused (the app installs it); the fit is read in a worker each time it shows."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="coef.back"),
        Binding("enter", "filter_feature", "Filter list", id="coef.filter"),
        Binding("v", "cycle_target", "pre/post/shift", tooltip="Show pre, post, shift or all", id="coef.target"),
        Binding("o", "cycle_sort", "Sort", tooltip="Sort by name, coefficient, its size or p", id="coef.sort"),
        Binding("O", "reverse_sort", "Reverse", tooltip="Reverse the sort", show=False, id="coef.reverse"),
        Binding("s", "toggle_std", "Standardized", tooltip="Per SD of the feature / raw units", show=False, id="coef.standardized"),
        Binding("m", "regimes", "Regimes", id="nav.regimes"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.target: str | None = None  # None: all three
        self.sort = "feature"
        self.desc = False
        self.row_features: dict[str, str] = {}
        self.standardized = False
        self.df = self.fit = None  # until the worker has read them
        self.std_column = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="coef-head")
        yield ListTable(id="coef-table", cursor_type="row", zebra_stripes=False, cell_padding=1)
        yield Static(id="coef-legend")
        yield AppFooter()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        for key, label in (("target", "RM"), ("feature", "feature"), ("est", "coef"), ("ci", "95% CI"),
                           ("p", "p adj"), ("sig", "sig"), ("bar", "coef on one scale")):
            t.add_column(label, key=key)
        t.focus()
        self.reload()

    def on_screen_resume(self) -> None:
        if getattr(self, "_shown_once", False):  # pushed again (the app reuses the screen): a fit may have run
            self.reload()
        self._shown_once = True

    def reload(self) -> None:
        """Read the fit in a worker; "loading…" until it comes (the first time: the screen is reused)."""
        if getattr(self, "fit_key", None) is None:
            self.query_one("#coef-head", Static).update(Text("loading the fit…", style="dim"))
        self._read_fit()

    @work(thread=True, exclusive=True, exit_on_error=False, group="coefficients")
    def _read_fit(self) -> None:
        from .common import WorkFailed, error_parts, model_names

        svc = self.app.service
        try:
            df, fit, names = svc.imprint(), svc.fit(), model_names(svc)
            try:
                defs = list(svc.choices("feature").get("feature", []))
            except Exception:
                defs = []
        except Exception as e:
            self.post_message(WorkFailed(*error_parts(e)))
            return
        self.post_message(FitRead(df, fit, names, defs))

    def on_fit_read(self, message: "FitRead") -> None:
        df, fit = message.df, message.fit
        key = (repr(fit), len(df))
        if key == getattr(self, "fit_key", None):
            return  # the same fit as shown: keep the table (and its cursor)
        self.fit_key = key
        self.df, self.fit, self.names = df, fit, message.names
        feats = set(df["feature"]) if len(df) else set()
        self.dropped = dropped_features(fit, feats, message.defs) if fit else []
        self.std_column = next((c for c in STD_COLUMNS if c in df.columns and df[c].notna().any()), None)
        self.display_names = feature_names(sorted(feats))
        self.refill()

    def on_work_failed(self, message) -> None:
        self.query_one("#coef-head", Static).update(Text("cannot read the fit (see the error)", style="dim"))
        self.app.show_error(message.title, message.message)

    def _estimates(self, df):
        """(estimate, ci_low, ci_high) columns of the display mode."""
        if self.standardized and self.std_column:
            lo = next((c for c in ("ci_low_per_sd", "ci_low_std", "std_ci_low") if c in df.columns), None)
            hi = next((c for c in ("ci_high_per_sd", "ci_high_std", "std_ci_high") if c in df.columns), None)
            return self.std_column, lo, hi
        return "estimate", "ci_low", "ci_high"

    def refill(self) -> None:
        if self.df is None:  # still loading
            return
        t = self.query_one(DataTable)
        t.clear()
        df = self.df
        fit = self.fit
        if fit is None or len(df) == 0:
            self.query_one("#coef-head", Static).update(Text.assemble(
                "No fit yet: run ", ("rmtui fit --study STUDY", "bold"), " to see the feature imprint."))
            self.query_one("#coef-legend", Static).update("")
            return
        est_col, lo_col, hi_col = self._estimates(df)
        r2 = {r.target: r.r2 for r in df.drop_duplicates("target").itertuples()}
        r2 = {k: r2[k] for k in sorted(r2, key=lambda x: TARGETS.index(x) if x in TARGETS else 9)}
        se = df["se_type"].dropna().iloc[0] if df["se_type"].notna().any() else fit.get("se_type")
        n = int(df["n"].max()) if df["n"].notna().any() else fit.get("n")
        head = Text()
        head.append("Imprint", style="bold")
        head.append(": reward per unit of feature" if est_col == "estimate" else ": reward per SD of feature")
        head.append(f" · n {n:,} texts" if n else "")
        se_words = {"cluster(pair)": "clustered by pair", "cluster": "clustered by pair"}.get(str(se), str(se))
        head.append(f" · SE {se_words}\n")
        head.append("showing ", style="bold")
        head.append(f"{self.target or 'pre, post, shift'} (v)")
        head.append(" · sorted by ", style="bold")
        head.append(f"{SORT_WORDS[self.sort]} {'↓' if self.desc else '↑'} (o, O)")
        if self.std_column:
            head.append(f" · s: {'raw units' if self.standardized else 'per SD'}")
        head.append("\nR² " + " ".join(f"{k} {v:.2f}" for k, v in r2.items() if v == v and v is not None))
        pre, post = fit.get("pre_model_id"), fit.get("post_model_id")
        for r, m in (("pre", pre), ("post", post)):
            if m:
                head.append(f" · {r} = ")
                head.append(self.names.get(str(m), str(m)))
        if self.dropped:
            head.append("\nleft out: ", style="bold yellow")
            head.append("; ".join(f"{f.rpartition('.')[2]} ({why})" for f, why in self.dropped))
        self.query_one("#coef-head", Static).update(head)
        vals = [df[c].abs().max() for c in (lo_col, hi_col, est_col) if c]
        scale = float(max(vals) or 1.0)
        rows = df if self.target is None else df[df["target"] == self.target]
        key = {"feature": rows["feature"], "estimate": rows[est_col], "|estimate|": rows[est_col].abs(),
               "p": rows["p_bonferroni"]}[self.sort]
        order = [TARGETS.index(x) if x in TARGETS else 9 for x in rows["target"]]
        rows = rows.assign(_k=key.values, _t=order).sort_values(["_t", "_k", "feature"],
                                                               ascending=[True, not self.desc, True])
        self.row_features = {}
        for i, r in enumerate(rows.to_dict("records")):
            pb = r["p_bonferroni"]
            est = r[est_col]
            sig = is_significant(pb)
            style = ("bold green" if est > 0 else "bold red") if sig else "dim"
            name = ("~" if r["proxy"] else "") + visible_line(self.display_names.get(str(r["feature"]), str(r["feature"])))
            rk = f"r{i}"
            self.row_features[rk] = str(r["feature"])
            ci = f"{_fmt(r[lo_col])} {_fmt(r[hi_col])}" if lo_col and hi_col else "-"
            t.add_row(Text(visible_line(r["target"])), Text(name, style="bold" if r["role"] == "target" else ""),
                      Text(_fmt(est), style=style), ci, _p(pb), Text(marker(pb), style=style),
                      bar(est, scale, sig, 10 if self.app.size.width < 100 else 24), key=rk)
        self.query_one("#coef-legend", Static).update(Text(
            f"sig (Bonferroni p adj): *** <.001 ** <.01 * <.05 ns · bar: one scale ±{scale:.2f}, │ = 0 · "
            "~ proxy · bold: target · i: glossary", style=""))

    def action_toggle_std(self) -> None:
        if not self.std_column:
            self.query_one("#coef-legend", Static).update(Text(
                "This fit stores no standardized coefficients (per SD of the feature): coefficients are in "
                "raw units; refit with a newer rmtui fit to get them."))
            return
        self.standardized = not self.standardized
        self.refill()

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
        self.app.show_summary_screen("regimes", switch=True)
