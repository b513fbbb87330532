"""The report's PNG figures: coefficient panels, agreement by subset, shares by group. Readable at any
count of groups (horizontal bars sorted by value, at most FIG_MAX_PX a side, top and bottom beyond
FIG_MAX_ROWS); every label sanitised (textsafe.figure_label). Moved out of document whole.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from analysis.metrics.significance import is_significant
from analysis.textsafe import figure_label


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _records(obj: Any, key_name: str = "name") -> list[dict[str, Any]] | None:
    """A list of flat dicts from a list of dicts, a dict of dicts, or a dict of scalars."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return [{k: v for k, v in r.items() if _is_scalar(v)} for r in obj]
    if isinstance(obj, dict) and obj:
        if all(isinstance(v, dict) for v in obj.values()):
            out = []
            for k, v in obj.items():
                if all(_is_scalar(x) for x in v.values()):
                    out.append({key_name: k, **v})
                else:
                    return None
            return out
        if all(_is_scalar(v) for v in obj.values()):
            return [{"name": k, "value": v} for k, v in obj.items()]
    return None


FIG_DPI = 110
FIG_MAX_PX = 1600    # no side of a figure is longer, whatever the count of groups or features
FIG_MAX_ROWS = 30    # beyond this many groups a figure shows the top and bottom halves and summarises the rest


def _figure(w: float = 7.0, h: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cap = FIG_MAX_PX / FIG_DPI
    fig = Figure(figsize=(min(w, cap), min(h, cap)), dpi=FIG_DPI)
    FigureCanvasAgg(fig)
    return fig


def _row_height(n_rows: int) -> float:
    """A horizontal figure's height in inches for ``n_rows`` rows (title and axis included)."""
    return min(FIG_MAX_PX / FIG_DPI, 0.27 * n_rows + 1.6)


def top_and_bottom(items: list, value, keep: int = FIG_MAX_ROWS) -> tuple[list, list]:
    """``items`` sorted by ``value`` (highest first; None last); beyond ``keep`` the top and bottom
    ``keep // 2`` are kept and the rest returned apart, for a figure to summarise in one row."""
    ranked = sorted(items, key=lambda x: (value(x) is None, -(value(x) or 0.0)))
    if len(ranked) <= keep:
        return ranked, []
    h = keep // 2
    return ranked[:h] + ranked[len(ranked) - h:], ranked[h:len(ranked) - h]


def _rest_label(rest: list, values: list[float | None], noun: str) -> str:
    vals = [v for v in values if v is not None]
    span = f" ({min(vals):.2f} to {max(vals):.2f})" if vals else ""
    return f"… {len(rest)} more {noun}{span}"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


def _pick(r: dict, *names: str) -> Any:
    for n in names:
        if n in r and r[n] is not None:
            return r[n]
    return None


def _coef_records(obj: Any) -> list[dict[str, Any]]:
    """Coefficient rows (estimate with ci_low/ci_high) from a list or nested dict of rows."""
    out: list[dict[str, Any]] = []

    def walk(o: Any, path: list[str]) -> None:
        if isinstance(o, dict):
            if "estimate" in o and _is_scalar(o.get("estimate")):
                r = {k: v for k, v in o.items() if _is_scalar(v)}
                if path:
                    r.setdefault("target", path[0])
                    if len(path) > 1:
                        r.setdefault("feature", path[-1])
                out.append(r)
                return
            for k, v in o.items():
                walk(v, path + [str(k)])
        elif isinstance(o, list):
            for v in o:
                walk(v, path)

    walk(obj, [])
    return out


PANEL_ORDER = ("pre", "post", "shift")


def fig_coefficients(rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """A coefficient plot with 95 % intervals, one panel per target (pre / post / shift)."""
    fig = figure_coefficients(rows, title)
    return None if fig is None else _save(fig, path)


def figure_coefficients(rows: list[dict[str, Any]], title: str):
    """The coefficient plot as a matplotlib Figure (panels in the order pre, post, shift, then others);
    each estimate is a marker at (estimate, row) and its interval a line from ci_low to ci_high."""
    rows = [r for r in rows if _num(r.get("estimate")) is not None
            and str(_pick(r, "feature", "term") or "").lower() not in ("intercept", "(intercept)", "const")]
    if not rows:
        return None
    targets: list[str] = []
    for r in rows:
        t = str(_pick(r, "target", "outcome") or "")
        if t not in targets:
            targets.append(t)
    first = {t: i for i, t in enumerate(targets)}
    targets = sorted(targets, key=lambda t: (PANEL_ORDER.index(t) if t in PANEL_ORDER else len(PANEL_ORDER), first[t]))
    feats: list[str] = []
    for r in rows:
        f = str(_pick(r, "feature", "term") or "")
        if f not in feats:
            feats.append(f)
    cell = {(str(_pick(x, "target", "outcome") or ""), str(_pick(x, "feature", "term") or "")): x for x in rows}
    sort_by = targets[-1]  # rows sorted by the last panel's estimate (the shift where there is one)
    feats, rest = top_and_bottom(feats, lambda f: _num((cell.get((sort_by, f)) or {}).get("estimate")))
    labels = list(feats)
    if rest:
        at = FIG_MAX_ROWS // 2
        labels.insert(at, _rest_label(rest, [_num((cell.get((sort_by, f)) or {}).get("estimate")) for f in rest],
                                      "rows"))
        feats.insert(at, None)
    fig = _figure(3.2 * len(targets) + 1.8, _row_height(len(feats)))
    for i, t in enumerate(targets):
        ax = fig.add_subplot(1, len(targets), i + 1)
        for j, f in enumerate(feats):
            r = cell.get((t, f)) if f is not None else None
            if r is None:
                continue
            est = _num(r["estimate"])
            lo, hi = _num(r.get("ci_low")), _num(r.get("ci_high"))
            p = _num(_pick(r, "p_bonferroni", "p"))
            color = "tab:blue" if is_significant(p) else "tab:gray"
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [j, j], color=color, lw=2)
            ax.plot([est], [j], "o", color=color)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(feats)))
        ax.set_yticklabels([figure_label(x) for x in labels] if i == 0 else [""] * len(feats), fontsize=8)
        ax.set_ylim(-0.7, len(feats) - 0.3)
        ax.invert_yaxis()
        ax.set_title(figure_label(t) or title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title + (f" (sorted by {sort_by})" if len(targets) > 1 and sort_by else ""), fontsize=11)
    return fig


def figure_agreement(stats: list[dict[str, Any]], baselines: list[dict[str, Any]] | None = None):
    """Agreement (agree / decided) with Wilson 95 % intervals by subset as horizontal rows: 'all' on top,
    then the subsets sorted by the post-D agreement (pre-D where there is no post-D RM), highest first;
    beyond 30 subsets the top and bottom 15 with the rest summarised in one row. One marker per RM role
    and the longer-wins baseline as a grey tick; a Figure whose lines hold the plotted numbers."""
    recs = [r for r in stats or [] if r.get("slice") in ("all", "subset") and _num(r.get("agreement")) is not None
            and r.get("role") in ("pre", "post")]
    if not recs:
        return None

    def key(r):
        return "all" if r["slice"] == "all" else str(r["value"])

    by = {(r["role"], key(r)): r for r in recs}
    sort_role = "post" if any(r["role"] == "post" for r in recs) else "pre"
    subsets = list(dict.fromkeys(key(r) for r in recs if r["slice"] != "all"))
    shown, rest = top_and_bottom(subsets, lambda g: _num((by.get((sort_role, g)) or {}).get("agreement")))
    groups = (["all"] if any(key(r) == "all" for r in recs) else []) + shown
    labels = list(groups)
    if rest:
        at = len(groups) - FIG_MAX_ROWS // 2
        labels.insert(at, _rest_label(rest, [_num((by.get((sort_role, g)) or {}).get("agreement")) for g in rest],
                                      "subsets"))
        groups.insert(at, None)
    fig = _figure(8.0, _row_height(len(groups)))
    ax = fig.add_subplot(1, 1, 1)
    offs = {"pre": -0.15, "post": 0.15}
    colors = {"pre": "tab:orange", "post": "tab:blue"}
    for role in ("pre", "post"):
        ys, xs, los, his = [], [], [], []
        for gi, g in enumerate(groups):
            r = by.get((role, g)) if g is not None else None
            if r is None:
                continue
            ys.append(gi + offs[role])
            xs.append(float(r["agreement"]))
            los.append(_num(r.get("agreement_low")))
            his.append(_num(r.get("agreement_high")))
        for y, lo, hi in zip(ys, los, his):
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y, y], color=colors[role], lw=2, gid=f"ci-{role}")
        if xs:
            ax.plot(xs, ys, "o", color=colors[role], label=f"{role}-D RM", gid=f"agreement-{role}")
    if baselines:
        bx, bys = [], []
        for gi, g in enumerate(groups):
            r = next((b for b in baselines if g is not None and b.get("baseline") == "longer_wins"
                      and ("all" if b.get("slice") == "all" else str(b.get("value"))) == g
                      and b.get("slice") in ("all", "subset")), None)
            if r is not None and _num(r.get("agreement")) is not None:
                bys.append(gi)
                bx.append(float(r["agreement"]))
        if bx:
            ax.plot(bx, bys, "|", color="gray", markersize=12, mew=2, label="longer wins", gid="baseline")
    ax.axvline(0.5, color="black", lw=0.6, ls=":")
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([figure_label(x) for x in labels], fontsize=8)
    ax.set_ylim(-0.7, len(groups) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel("agreement (agree / decided)")
    ax.set_xlim(0, 1)
    ax.set_title(f"Agreement with the human labels by subset (Wilson 95 %; sorted by {sort_role}-D)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _share_records(obj: Any, value_keys: tuple[str, ...]) -> list[tuple[str, str, float]]:
    """(group, category, value) from regime-like sections: the first of ``value_keys`` present."""
    out: list[tuple[str, str, float]] = []
    recs = _records(obj, "group")
    if recs is None and isinstance(obj, dict):
        for g, v in obj.items():
            for grp, cat, val in _share_records(v, value_keys):
                out.append((str(g) if grp == "all" else f"{g}/{grp}", cat, val))
        return out
    for r in recs or []:
        cat = str(_pick(r, "regime", "name", "category", "group", "gamma") or "")
        val = _num(_pick(r, *value_keys))
        grp = r.get("gamma") if "regime" in r and "gamma" in r else r.get("group") if "regime" in r else "all"
        if val is not None:
            out.append((str(grp if grp is not None else "all"), cat, val))
    return out


def fig_bars(obj: Any, path: Path, title: str, ylabel: str,
             value_keys: tuple[str, ...] = ("share", "pct", "percent", "fraction", "rate", "value", "n", "count"),
             ) -> Path | None:
    """Horizontal bars, one row per category (regime ...), sorted by the first group's value, highest
    first, one bar per group within a row; beyond 30 categories the top and bottom 15 with the rest
    summarised; ``ylabel`` names the values' axis (now the horizontal one)."""
    recs = _share_records(obj, value_keys)
    if not recs:
        return None
    groups = list(dict.fromkeys(g for g, _, _ in recs))
    value = {(g, c): v for g, c, v in recs}
    cats = list(dict.fromkeys(c for _, c, _ in recs))
    cats, rest = top_and_bottom(cats, lambda c: value.get((groups[0], c)))
    labels = [c.replace("_", " ") for c in cats]
    if rest:
        at = FIG_MAX_ROWS // 2
        labels.insert(at, _rest_label(rest, [value.get((groups[0], c)) for c in rest], "categories"))
        cats.insert(at, None)
    fig = _figure(7.5, _row_height(len(cats) * max(1, min(len(groups), 4)) * 0.6 + 1))
    ax = fig.add_subplot(1, 1, 1)
    height = 0.8 / max(1, len(groups))
    for gi, g in enumerate(groups):
        ys = [ci + gi * height - 0.4 + height / 2 for ci, c in enumerate(cats) if c is not None]
        vals = [value.get((g, c), 0.0) for c in cats if c is not None]
        ax.barh(ys, vals, height=height, label=figure_label(g) if len(groups) > 1 else None, gid=f"bars-{g}")
    ax.set_yticks(range(len(cats)))
    ax.set_yticklabels([figure_label(x) for x in labels], fontsize=8)
    ax.set_ylim(-0.7, len(cats) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_title(title, fontsize=11)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# the first page: findings in words and numbers
