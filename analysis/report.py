"""``rmtui report``: a self-contained Markdown and HTML report of a study, with PNG figures.

Every number comes from :func:`analysis.fit.summary` (the dict ``rmtui summary --json`` prints), so the
report and the summary agree; the dict is written beside the report as ``summary.json``. The triage
table (tagged findings with their texts) comes from the study's triage reads.

Layout of ``DIR``: ``report.md``, ``report.html`` (figures embedded, opens alone), ``figures/*.png``,
``summary.json``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import RmtuiError
from .textsafe import visible

# the sections of the summary, in report order: (key in the summary, title, note)
SECTIONS: list[tuple[str, str, str]] = [
    ("agreement", "Agreement with the human labels",
     "Share of pairs where the RM rewards the chosen response above the rejected one; ties are counted apart."),
    ("regimes", "Regimes (paper's Table 1)",
     "From (pre-D agreement, post-D agreement): stayed aligned (1,1), got aligned (0,1), resists alignment (0,0), "
     "reversed (1,0)."),
    ("regimes_by_gamma", "Regimes by LM-labeler preference (gamma)",
     "gamma = c: the labeler agrees with the human; i: indifferent (same target labels); r: disagrees."),
    ("misalignment_by_gamma", "Post-D misalignment by gamma", ""),
    ("regimes_by_subset", "Regimes by dataset subset", ""),
    ("imprint", "Feature imprint (paper's Figure 3)",
     "OLS of reward on the text's features, chosen and rejected pooled; standard errors clustered by pair; "
     "95 % intervals; Bonferroni-adjusted p-values. Shift = post-D minus pre-D reward."),
    ("theta_by_regime", "Reward shift angle theta by regime", "Signed angle (degrees) from (pre r_c, pre r_r) to "
     "(post r_c, post r_r)."),
    ("theta_by_gamma", "Reward shift angle theta by gamma", ""),
    ("drivers", "What drives post-D misalignment", "Linear probability model of post-D misalignment on chosen-side "
     "and rejected-side features."),
    ("robustness", "Robustness to rewrites",
     "Coefficients of an LPM of became-misaligned on the feature flips caused by rewriting."),
]


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    summary_json: Path
    figures: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# numbers and tables


def fmt_num(v: Any) -> str:
    """How every number appears in the report's tables (4 significant digits)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == int(v) and abs(v) < 1e6 and not (0 < abs(v) < 1):
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


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


def _table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header: list[str] = []
    for r in records:
        for k in r:
            if k not in header:
                header.append(k)
    rows = [[fmt_num(r.get(k)) for k in header] for r in records]
    return header, rows


HIDDEN_COLUMNS = {"fit_id", "model_id"}


def _flatten_section(key: str, obj: Any, title: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """One or more (title, header, rows) tables for a section of the summary."""
    recs = _records(obj, "group")
    if recs is not None:
        if len(recs) > 1 or key not in ("models", "fit"):
            recs = [{k: v for k, v in r.items() if k not in HIDDEN_COLUMNS} for r in recs]
        h, rows = _table(recs)
        return [(title, h, rows)]
    out = []
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if _is_scalar(v)}
        if scalars:
            h, rows = _table([{"name": k, "value": v} for k, v in scalars.items()])
            out.append((title, h, rows))
        for k, v in obj.items():
            if not _is_scalar(v):
                out.extend(_flatten_section(f"{key}.{k}", v, f"{title}: {k}"))
    return out


def _string_list(v: Any) -> list[str]:
    return [str(x) for x in v] if isinstance(v, list) and v and all(isinstance(x, str) for x in v) else []


def summary_tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table of the summary, in report order: known sections first, then any other section."""
    tables = []
    known = [k for k, _, _ in SECTIONS]
    for key, title, _ in SECTIONS:
        if key in data and data[key] not in (None, [], {}):
            tables.extend(_flatten_section(key, data[key], title))
    for key, v in data.items():
        if key in known or _is_scalar(v) or v in ([], {}):
            continue
        tables.extend(_flatten_section(key, v, key.replace("_", " ").capitalize()))
    return tables


def _section_tables(data: dict[str, Any], key: str, title: str):
    return _flatten_section(key, data[key], title) if data.get(key) not in (None, [], {}) else []


# ---------------------------------------------------------------------------------------------
# figures (matplotlib, Agg, no global state)


def _figure(w: float = 7.0, h: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


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


def fig_coefficients(rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """A coefficient plot with 95 % intervals, one panel per target (pre / post / shift)."""
    rows = [r for r in rows if _num(r.get("estimate")) is not None
            and str(_pick(r, "feature", "term") or "").lower() not in ("intercept", "(intercept)", "const")]
    if not rows:
        return None
    targets: list[str] = []
    for r in rows:
        t = str(_pick(r, "target", "outcome") or "")
        if t not in targets:
            targets.append(t)
    feats: list[str] = []
    for r in rows:
        f = str(_pick(r, "feature", "term") or "")
        if f not in feats:
            feats.append(f)
    fig = _figure(3.2 * len(targets) + 1.8, 0.32 * len(feats) + 1.4)
    for i, t in enumerate(targets):
        ax = fig.add_subplot(1, len(targets), i + 1)
        for j, f in enumerate(feats):
            r = next((x for x in rows if str(_pick(x, "target", "outcome") or "") == t
                      and str(_pick(x, "feature", "term") or "") == f), None)
            if r is None:
                continue
            est = _num(r["estimate"])
            lo, hi = _num(r.get("ci_low")), _num(r.get("ci_high"))
            p = _num(_pick(r, "p_bonferroni", "p"))
            color = "tab:blue" if p is not None and p < 0.05 else "tab:gray"
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [j, j], color=color, lw=2)
            ax.plot([est], [j], "o", color=color)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(feats)))
        ax.set_yticklabels(feats if i == 0 else [""] * len(feats), fontsize=8)
        ax.set_ylim(-0.7, len(feats) - 0.3)
        ax.invert_yaxis()
        ax.set_title(t or title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


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
    recs = _share_records(obj, value_keys)
    if not recs:
        return None
    groups = list(dict.fromkeys(g for g, _, _ in recs))
    cats = list(dict.fromkeys(c for _, c, _ in recs))
    fig = _figure(max(5.0, 0.9 * len(cats) * max(1, len(groups)) + 2), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(groups))
    for gi, g in enumerate(groups):
        vals = [next((v for gg, c, v in recs if gg == g and c == cat), 0.0) for cat in cats]
        xs = [ci + gi * width - 0.4 + width / 2 for ci in range(len(cats))]
        ax.bar(xs, vals, width=width, label=g if len(groups) > 1 else None)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([c.replace("_", " ") for c in cats], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# rendering


def _md_cell(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _clip(s: Any, n: int = 400) -> str:
    s = "" if s is None else str(s)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def triage_rows(study, limit: int = 200) -> tuple[list[str], list[list[str]]]:
    """Tagged findings with their texts: pair, subset, regime, margins, tags, note, prompt, responses."""
    try:
        from .store import browse
    except ImportError:  # pragma: no cover - before the app branch lands
        return [], []
    counts = browse.tag_counts(study)
    ids: list[str] = []
    for tag in counts:
        for pid in browse.pair_ids(study, browse.EntryFilter(regime=None, tag=tag)):
            if pid not in ids:
                ids.append(pid)
    ids = ids[:limit]
    if not ids:
        return [], []
    fr = browse.export_frames(study, ids)
    pairs = {r["pair_id"]: r for r in fr["pairs"].to_dict("records")}
    tags: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    def present(v: Any) -> bool:
        return isinstance(v, str) and v != ""

    for r in fr["triage"].to_dict("records"):
        if present(r.get("tag")):
            tags.setdefault(r["pair_id"], []).append(str(r["tag"]))
        if present(r.get("note")):
            notes[r["pair_id"]] = str(r["note"])
    header = ["pair", "subset", "regime", "margin pre", "margin post", "tags", "note", "prompt (end)",
              "chosen", "rejected"]
    rows = []
    for pid in ids:
        p = pairs.get(pid, {})
        ctx = " ".join(str(p.get("context") or "").split())
        rows.append([
            pid, str(p.get("subset") or ""), str(p.get("regime") or ""),
            fmt_num(_num(p.get("margin_pre"))), fmt_num(_num(p.get("margin_post"))),
            " ".join(sorted(set(tags.get(pid, [])))), _clip(notes.get(pid, ""), 200),
            ("…" + ctx[-200:]) if len(ctx) > 200 else ctx,
            _clip(p.get("chosen_response")), _clip(p.get("rejected_response")),
        ])
    return header, rows


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%}.note{color:#555;font-size:0.9em}table.triage td{text-align:left;max-width:22em}"""


def write_report(study, out_dir: str | Path, *, data: dict[str, Any] | None = None,
                 title: str | None = None) -> ReportResult:
    """Write ``report.md``, ``report.html``, ``figures/*.png`` and ``summary.json`` into ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RmtuiError(f"{out}: exists and is not a folder", "Report")
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    if data is None:
        from .fit import summary as fit_summary

        data = fit_summary(study)
    summary_json = out / "summary.json"
    summary_json.write_text(json.dumps(data, indent=1, sort_keys=False, default=str), encoding="utf-8")

    figures: dict[str, Path] = {}

    def add(key: str, p: Path | None) -> None:
        if p is not None:
            figures[key] = p

    if data.get("regimes"):
        add("regimes", fig_bars(data["regimes"], figdir / "regimes.png", "Regimes", "share of pairs"))
    if data.get("regimes_by_gamma"):
        add("regimes_by_gamma", fig_bars(data["regimes_by_gamma"], figdir / "regimes_by_gamma.png",
                                         "Regimes by gamma", "share of pairs"))
    if data.get("imprint"):
        add("imprint", fig_coefficients(_coef_records(data["imprint"]), figdir / "imprint.png",
                                        "Feature imprint (95 % intervals)"))
    if data.get("theta_by_regime"):
        add("theta_by_regime", fig_bars(data["theta_by_regime"], figdir / "theta_by_regime.png",
                                        "Reward shift angle by regime (mean)", "theta (degrees)",
                                        value_keys=("mean", "median")))
    if data.get("robustness"):
        add("robustness", fig_coefficients(_coef_records(data["robustness"]), figdir / "robustness.png",
                                           "Robustness score (95 % intervals)"))

    name = title or f"rmtui report: {getattr(study, 'path', 'study')}"
    head = {k: v for k, v in data.items() if _is_scalar(v)}
    md: list[str] = [f"# {name}", ""]
    hp: list[str] = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
                     f"<style>{_CSS}</style></head><body><h1>{html.escape(name)}</h1>"]
    if head:
        h, rows = _table([{"name": k, "value": v} for k, v in head.items()])
        md += [md_table(h, rows), ""]
        hp.append(html_table(h, rows))

    known = [k for k, _, _ in SECTIONS]
    sections = [(k, t, n) for k, t, n in SECTIONS if data.get(k) not in (None, [], {})]
    sections += [(k, k.replace("_", " ").capitalize(), "") for k, v in data.items()
                 if k not in known and not _is_scalar(v) and v not in ([], {})]
    for key, stitle, note in sections:
        md += [f"## {stitle}", ""]
        hp.append(f"<h2>{html.escape(stitle)}</h2>")
        if note:
            md += [f"_{note}_", ""]
            hp.append(f"<p class='note'>{html.escape(note)}</p>")
        if key in figures:
            rel = figures[key].relative_to(out).as_posix()
            md += [f"![{stitle}]({rel})", ""]
            b64 = base64.b64encode(figures[key].read_bytes()).decode()
            hp.append(f"<img alt='{html.escape(stitle)}' src='data:image/png;base64,{b64}'>")
        if _string_list(data[key]):
            md += [f"- {x}" for x in _string_list(data[key])] + [""]
            hp.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in _string_list(data[key])) + "</ul>")
        if isinstance(data[key], dict):
            for k, v in data[key].items():
                if _string_list(v):
                    md += [f"{stitle}, {k}:", ""] + [f"- {x}" for x in _string_list(v)] + [""]
                    hp.append(f"<p>{html.escape(stitle)}, {html.escape(str(k))}:</p><ul>"
                              + "".join(f"<li>{html.escape(x)}</li>" for x in _string_list(v)) + "</ul>")
        for ttitle, h, rows in _flatten_section(key, data[key], stitle):
            if ttitle != stitle:
                md += [f"### {ttitle}", ""]
                hp.append(f"<h3>{html.escape(ttitle)}</h3>")
            md += [md_table(h, rows), ""]
            hp.append(html_table(h, rows))

    th, trows = triage_rows(study)
    md += ["## Tagged findings (triage)", ""]
    hp.append("<h2>Tagged findings (triage)</h2>")
    if trows:
        md += [md_table(th, trows), ""]
        hp.append(html_table(th, trows).replace("<table>", "<table class='triage'>", 1))
    else:
        md += ["_No pair is tagged yet: tag pairs in the app (`rmtui explore`) and rerun the report._", ""]
        hp.append("<p class='note'>No pair is tagged yet.</p>")
    md += ["", f"All numbers: `{summary_json.name}` (the same dict `rmtui summary --json` prints).", ""]
    hp.append(f"<p class='note'>All numbers: {summary_json.name} (the same dict <code>rmtui summary --json</code> "
              "prints).</p></body></html>")

    md_path = out / "report.md"
    html_path = out / "report.html"
    md_path.write_text(visible("\n".join(md)), encoding="utf-8")  # data-derived names: control characters shown
    html_path.write_text(visible("".join(hp)), encoding="utf-8")
    return ReportResult(out, md_path, html_path, summary_json, list(figures.values()))


def parse_md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The tables of a Markdown report (for tests and scripts that check the report's numbers)."""
    tables = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            header = _split_row(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(_split_row(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def _split_row(line: str) -> list[str]:
    cells, cur, esc = [], "", False
    body = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    for ch in body:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def iter_numbers(obj: Any) -> Iterable[float]:  # pragma: no cover - helper for scripts
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from iter_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from iter_numbers(v)
