"""``rmtui report``: a self-contained Markdown and HTML report of a study, with PNG figures.

Every number comes from :func:`analysis.fit.study_fit.summary` (the dict ``rmtui summary --json`` prints), so the
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

from analysis.errors import RmtuiError
from analysis.metrics.significance import is_significant
from analysis.textsafe import figure_label, md_escape, visible
from analysis.report.figures import (  # noqa: F401  (moved there; kept importable from here)
    FIG_DPI, FIG_MAX_PX, FIG_MAX_ROWS, PANEL_ORDER, _coef_records, _figure, _is_scalar, _num, _pick, _records, _rest_label, _row_height, _save, _share_records, fig_bars, fig_coefficients, figure_agreement, figure_coefficients, top_and_bottom)
from analysis.report.tables import (  # noqa: F401  (moved there; kept importable from here)
    _split_row, iter_numbers, parse_md_tables)

# the sections of the summary, in report order: (key in the summary, title, note)
SECTIONS: list[tuple[str, str, str]] = [
    ("agreement_stats", "Agreement and misalignment per RM and slice",
     "agreement = agree / decided pairs, misalignment = 1 - agreement; RM ties, unscored pairs and human ties "
     "(human tie) counted beside, never in decided; Wilson 95 % intervals."),
    ("paired_tests", "Pre-D vs post-D on the same pairs", "McNemar's exact test on reversed vs got aligned (pairs "
     "decided by both RMs); difference post - pre with a paired Wald 95 % interval; p (BH): Benjamini-Hochberg "
     "adjusted across the tests of one slice (all subsets together, all splits together)."),
    ("baselines", "What length alone gets", "longer-wins, shorter-wins and a length-only logistic model "
     "(5-fold cross-validated by pair), agreement over the pairs each rule decides."),
    ("truncation", "Texts cut at each RM's maximum length",
     "n truncated of n scored (every run of the model); the context is cut from the left, the response kept; "
     "over 5 % is flagged in the findings."),
    ("agreement", "Agreement with the human labels (every RM)",
     "agree / decided pairs (ties and unscored counted apart)."),
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
    warnings: list[str] = field(default_factory=list)  # library warnings met, one visible line each


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


HUMAN_NAMES = {
    "ci_low": "95% CI low", "ci_high": "95% CI high", "p_bonferroni": "p (Bonferroni)", "p_bh": "p (BH)",
    "se": "SE", "se_type": "SE type", "vif": "VIF", "r2": "R²", "n_nan": "no angle", "n_pos": "> 0",
    "n_neg": "< 0", "n_zero": "= 0", "n_tie": "ties left out", "sign_test_p": "sign test p",
    "share_decided": "share of decided", "agreement_low": "agreement 95% low",
    "agreement_high": "agreement 95% high", "misalignment_low": "misalignment 95% low",
    "misalignment_high": "misalignment 95% high", "agreement_ties_as_disagree": "agreement (ties as disagree)",
    "agreement_decided": "agreement (decided)", "tie_share": "tie share", "n_both_decided": "pairs decided by both",
    "got_aligned": "got aligned", "diff_low": "difference 95% low", "diff_high": "difference 95% high",
    "agreement_pre": "agreement pre", "agreement_post": "agreement post", "n_flip": "rewrites with the flip",
    "events_flip": "events with the flip", "p_exact": "p (Fisher exact)", "p_method": "p from",
    "ci_method": "interval from", "mean_change": "mean change", "feature_sd": "feature SD",
    "estimate_per_sd": "estimate per SD", "ci_low_per_sd": "per SD 95% low", "ci_high_per_sd": "per SD 95% high",
    "share_low": "share 95% low", "share_high": "share 95% high", "gamma_features": "gamma features",
    "n_pairs": "pairs", "same_target_labels": "same target labels", "near_identical": "near-identical",
    "labeler_sides_with_rm": "labeler sides with RM", "theta_centered": "theta (centred)",
    "human_tie": "human ties (left out)",
}


def human_name(k: str) -> str:
    """A DataFrame column name as a table header (the report never shows snake_case where it can help)."""
    return HUMAN_NAMES.get(k, k.replace("_", " ") if "_" in k else k)


def _table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header: list[str] = []
    for r in records:
        for k in r:
            if k not in header:
                header.append(k)
    rows = [[fmt_num(r.get(k)) for k in header] for r in records]
    return [human_name(k) for k in header], rows


HIDDEN_COLUMNS = {"fit_id", "model_id"}
SUBTABLE_TITLES = {  # a nested table's key as a title (the coefficients' analyses)
    "imprint_joint_wald": "imprint, joint Wald F tests (estimate = F statistic, not a coefficient)",
    "misalignment_lpm": "misalignment drivers, linear probability model",
    "misalignment_logit": "misalignment drivers, logit",
}


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
                out.extend(_flatten_section(f"{key}.{k}", v, f"{title}: {SUBTABLE_TITLES.get(k, k)}"))
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


PAPER = {  # the paper's hh-rlhf numbers (train, 160,800 pairs), for the comparison table
    "agreement pre-D": 0.57, "agreement post-D": 0.74,
    "stayed aligned": 0.4829, "got aligned": 0.2577, "resists alignment": 0.1719, "reversed": 0.0875,
    "misalignment, gamma = c": 0.103, "misalignment, gamma = i": 0.274, "misalignment, gamma = r": 0.439,
}


def _f3(v: Any) -> str:
    x = _num(v)
    return "-" if x is None else f"{x:.3f}"


def _pct(v: Any) -> str:
    x = _num(v)
    return "-" if x is None else f"{100 * x:.1f} %"


def _pfmt(v: Any) -> str:
    x = _num(v)
    if x is None:
        return "-"
    return f"{x:.2g}" if x >= 1e-4 else f"{x:.1e}"


def _ci(lo: Any, hi: Any, f=_f3) -> str:
    return f"[{f(lo)}, {f(hi)}]" if _num(lo) is not None and _num(hi) is not None else ""


def is_hh_rlhf(data: dict[str, Any]) -> bool:
    ds = [str(d).lower() for d in data.get("datasets") or []]
    if any("hh-rlhf" in d or "hh_rlhf" in d for d in ds):
        return True
    subsets = {str(r.get("value")) for r in data.get("agreement_stats") or [] if r.get("slice") == "subset"}
    return bool(subsets) and subsets <= {"harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"}


def findings(data: dict[str, Any]) -> list[str]:
    """The report's first page: one bullet per finding, numbers with intervals (Markdown lines)."""
    out: list[str] = []
    for w in data.get("truncation_warnings") or []:  # it qualifies every number below: first
        out.append(f"- **Truncation**: {visible(w)}.")
    ag = {r.get("role"): r for r in data.get("agreement_stats") or [] if r.get("slice") == "all"
          and r.get("role") in ("pre", "post")}
    pt = next((r for r in data.get("paired_tests") or [] if r.get("slice") == "all"), None)
    if ag:
        parts = []
        for role in ("pre", "post"):
            r = ag.get(role)
            if r:
                parts.append(f"{role}-D {_f3(r['agreement'])} {_ci(r['agreement_low'], r['agreement_high'])} "
                             f"({r['decided']:,} decided, {r['tie']:,} ties)")
        line = "**Agreement** with the human labels (agree / decided, Wilson 95 %): " + "; ".join(parts) + "."
        n_ht = max(int(_num((ag.get(role) or {}).get("human_tie")) or 0) for role in ("pre", "post"))
        if n_ht:
            line += (f" {n_ht:,} human ties (the annotators preferred neither side) are left out of every "
                     "agreement and counted apart.")
        if pt and pt.get("p") is not None:
            line += (f" Paired on the {pt['n_both_decided']:,} pairs both decide: post - pre "
                     f"{_num(pt['difference']):+.3f} {_ci(pt['diff_low'], pt['diff_high'], lambda v: f'{_num(v):+.3f}')}, "
                     f"{pt['reversed']:,} reversed vs {pt['got_aligned']:,} got aligned, McNemar exact p = "
                     f"{_pfmt(pt['p'])}.")
        out.append("- " + line)
    base = next((r for r in data.get("baselines") or [] if r.get("slice") == "all" and r.get("baseline") == "longer_wins"),
                None)
    logit = next((r for r in data.get("baselines") or [] if r.get("slice") == "all"
                  and r.get("baseline") == "length_logit"), None)
    if base:
        out.append(f"- **Length alone**: longer-wins agrees on {_f3(base['agreement'])} "
                   f"{_ci(base['agreement_low'], base['agreement_high'])} of the pairs it decides"
                   + (f"; a cross-validated length-only logit on {_f3(logit['agreement'])}" if logit else "") + ".")
    names = {"longer_wins": "longer-wins", "shorter_wins": "shorter-wins", "length_logit": "the length-only logit"}
    beats: dict[str, dict] = {}
    for b in data.get("length_beats_rm") or []:  # the best rule per RM
        if b["role"] not in beats or b["baseline_agreement"] > beats[b["role"]]["baseline_agreement"]:
            beats[b["role"]] = b
    for role in ("pre", "post"):
        b = beats.get(role)
        if b:
            out.append(f"- **Length alone beats the {role}-D RM**: {names.get(b['baseline'], b['baseline'])} agrees "
                       f"with the humans on {_f3(b['baseline_agreement'])} {_ci(b['baseline_low'], b['baseline_high'])} "
                       f"of the {b['baseline_decided']:,} pairs it decides, the {role}-D RM on "
                       f"{_f3(b['rm_agreement'])} {_ci(b['rm_low'], b['rm_high'])} of {b['rm_decided']:,}"
                       + ("; the intervals do not overlap" if b.get("apart") else "")
                       + ". Read every other number here against it: the RM may track length more than the labels.")
    sub = [r for r in data.get("paired_tests") or [] if r.get("slice") == "subset" and _num(r.get("p")) is not None]
    if len(sub) > 1:
        sig = [r for r in sub if (_num(r.get("p_bh")) or 1.0) < 0.05]
        raw = [r for r in sub if (_num(r.get("p")) or 1.0) < 0.05]
        out.append(f"- **Pre-D vs post-D per subset** ({len(sub)} McNemar tests, Benjamini-Hochberg corrected): "
                   f"{len(sig)} of {len(sub)} subsets differ at p (BH) < 0.05 ({len(raw)} before correction)"
                   + (": " + "; ".join(f"{visible(str(r['value']))} {_num(r['difference']):+.3f} (p BH {_pfmt(r['p_bh'])})"
                                       for r in sorted(sig, key=lambda r: _num(r['p_bh']) or 1.0)[:5]) if sig else "")
                   + ".")
    rs = {r.get("regime"): r for r in data.get("regime_stats") or [] if r.get("slice") == "all"}
    if rs.get("resists_alignment"):
        r = rs["resists_alignment"]
        out.append(f"- **Resistance**: {_pct(r['share'])} {_ci(r['share_low'], r['share_high'], _pct)} of the "
                   f"{r['decided']:,} pairs both RMs decide resist alignment (misaligned before and after); "
                   + ", ".join(f"{k.replace('_', ' ')} {_pct(v['share'])}" for k, v in rs.items() if k != "resists_alignment")
                   + ".")
    shifts = [r for r in data.get("imprint") or [] if r.get("target") == "shift" and _num(r.get("estimate")) is not None]
    if shifts:
        key = "estimate_per_sd" if all(_num(r.get("estimate_per_sd")) is not None for r in shifts) else "estimate"
        top = sorted(shifts, key=lambda r: -abs(_num(r[key]) or 0))[:3]
        unit = "reward per SD of the feature" if key == "estimate_per_sd" else "reward per unit"
        lo, hi = ("ci_low_per_sd", "ci_high_per_sd") if key == "estimate_per_sd" else ("ci_low", "ci_high")
        out.append("- **Largest imprint shifts** (post-D minus pre-D, " + unit + ", Bonferroni p): "
                   + "; ".join(f"{r['feature']} {_num(r[key]):+.3f} {_ci(r.get(lo), r.get(hi))} (p {_pfmt(r.get('p_bonferroni'))})"
                               for r in top) + ".")
    mg = [r for r in data.get("misalignment_by_gamma") or [] if r.get("gamma") in ("c", "i", "r")]
    if mg:
        gsrc = data.get("gamma_source") or {}
        out.append("- **Misalignment by labeler preference gamma** (post-D, of decided pairs): "
                   + "; ".join(f"{r['gamma']} {_pct(r['misalignment'])} {_ci(r.get('misalignment_low'), r.get('misalignment_high'), _pct)}"
                               f" (n {r['decided']:,})" for r in mg)
                   + (". **Caveat**: gamma comes from PROXY labels; their agreement with the human label: "
                      + "; ".join(f"{r['value']} {_f3(r['agreement'])}" for r in data.get("labeler_agreement") or []
                                  if r.get("slice") in ("all",)) if gsrc.get("proxy") else "") + ".")
    rob = data.get("robustness") or []
    rob = rob.get("robustness") or [] if isinstance(rob, dict) else rob
    if rob and any(isinstance(r, dict) and "variant" in r for r in rob):
        terms = [r for r in rob if r.get("variant") == "at_risk" and r.get("term") not in ("intercept", "side_rejected")]
        est = [r for r in terms if _num(r.get("estimate")) is not None]
        surv = [r for r in est if (_num(r.get("p_bh")) or 1.0) < 0.05]
        if surv:
            out.append("- **Robustness terms that survive BH correction** (rewrites at risk, post-D RM): "
                       + "; ".join(f"{r['outcome']} ~ {r['term']} {_num(r['estimate']):+.3f} "
                                   f"({r['events_flip']}/{r['n_flip']} events with the flip, p BH {_pfmt(r['p_bh'])})"
                                   for r in surv) + ".")
        else:
            out.append(f"- **Robustness**: no flip term survives BH correction ({len(est)} estimable, "
                       f"{len(terms) - len(est)} not estimable for lack of events or variation).")
    if not out:
        out.append("- Nothing to report yet: score the study with a pre-D and a post-D RM and run rmtui fit.")
    return out


def paper_comparison(data: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """The paper's hh-rlhf figures beside the study's (None unless the study is hh-rlhf)."""
    if not is_hh_rlhf(data):
        return None
    ag = {r.get("role"): r for r in data.get("agreement_stats") or [] if r.get("slice") == "all"}
    rs = {r.get("regime"): r for r in data.get("regime_stats") or [] if r.get("slice") == "all"}
    mg = {r.get("gamma"): r for r in data.get("misalignment_by_gamma") or []}
    mine = {
        "agreement pre-D": (ag.get("pre") or {}).get("agreement"),
        "agreement post-D": (ag.get("post") or {}).get("agreement"),
        **{k.replace("_", " "): (rs.get(k) or {}).get("share")
           for k in ("stayed_aligned", "got_aligned", "resists_alignment", "reversed")},
        **{f"misalignment, gamma = {g}": (mg.get(g) or {}).get("misalignment") for g in ("c", "i", "r")},
    }
    proxy = bool((data.get("gamma_source") or {}).get("proxy"))
    rows = []
    for k, v in PAPER.items():
        m = mine.get(k)
        fmt = _f3 if k.startswith("agreement") else _pct
        note = "gamma from proxies" if proxy and k.startswith("misalignment") else ""
        rows.append([k, fmt(v), fmt(m), note])
    return ["measure", "paper (hh-rlhf train, 160,800 pairs)", "this study", "note"], rows


# ---------------------------------------------------------------------------------------------
# rendering


def _md_cell(s: str) -> str:
    """A table cell: one line, Markdown/HTML escaped (``parse_md_tables`` reads it back)."""
    return md_escape(str(s).replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


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
    from analysis.store.entries import sorted_ids
    from analysis.store.export import export_frames
    from analysis.store.filters import EntryFilter
    from analysis.store.triage import tag_counts

    counts = tag_counts(study)
    ids: list[str] = []
    for tag in counts:
        for pid in sorted_ids(study, EntryFilter(regime=None, tag=tag)):
            if pid not in ids:
                ids.append(pid)
    ids = ids[:limit]
    if not ids:
        return [], []
    fr = export_frames(study, ids)
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
    """Write ``report.md``, ``report.html``, ``figures/*.png`` and ``summary.json`` into ``out_dir``.

    Atomic (issue 25): the report is built in a temporary folder (a hidden ``.NAME.PID.part`` beside a
    new ``out_dir``, or inside an existing one) and moved into place only when whole, so a killed
    report leaves the previous report or none, never half a folder; leftovers of killed reports are
    removed first. Library warnings (a font missing a glyph, ...) are captured and returned as
    visible one-line ``warnings``, never printed raw."""
    import warnings as _warnings

    from analysis.report.atomic import clean_leftovers, discard, publish_dir, staging_dir
    from analysis.textsafe import visible_line

    final = Path(out_dir)
    if final.exists() and not final.is_dir():
        raise RmtuiError(f"{final}: exists and is not a folder", "Report")
    clean_leftovers(final)
    stage = staging_dir(final)
    try:
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            res = _write_report_files(study, stage, data=data, title=title)
        publish_dir(stage, final)
    except BaseException:
        discard(stage)
        raise
    seen = list(dict.fromkeys(visible_line(f"{w.category.__name__}: {w.message}") for w in caught))
    return ReportResult(final, final / res.markdown.name, final / res.html.name, final / res.summary_json.name,
                        [final / f.relative_to(stage) for f in res.figures], seen)


def _write_report_files(study, out: Path, *, data: dict[str, Any] | None = None,
                        title: str | None = None) -> ReportResult:
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    if data is None:
        from analysis.fit.study_fit import summary as fit_summary

        data = fit_summary(study)
    summary_json = out / "summary.json"
    summary_json.write_text(json.dumps(data, indent=1, sort_keys=False, default=str), encoding="utf-8")

    figures: dict[str, Path] = {}

    def add(key: str, p: Path | None) -> None:
        if p is not None:
            figures[key] = p

    if data.get("agreement_stats"):
        f = figure_agreement(data["agreement_stats"], data.get("baselines"))
        if f is not None:
            add("agreement", _save(f, figdir / "agreement_by_subset.png"))
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
        rob_rows = [r for r in _coef_records(data["robustness"]) if r.get("variant") in (None, "at_risk")
                    and r.get("term") != "side_rejected"]
        add("robustness", fig_coefficients(rob_rows, figdir / "robustness.png",
                                           "Robustness score, rewrites at risk (95 % intervals)"))

    name = title or f"rmtui report: {getattr(study, 'path', 'study')}"
    head = {k: v for k, v in data.items() if _is_scalar(v)}
    md: list[str] = [f"# {md_escape(name)}", ""]
    hp: list[str] = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
                     f"<style>{_CSS}</style></head><body><h1>{html.escape(name)}</h1>"]
    md += ["## Findings", ""] + [md_escape(x, keep="*") for x in findings(data)] + [""]
    hp.append("<h2>Findings</h2><ul>" + "".join(
        f"<li>{html.escape(x[2:]).replace('**', '')}</li>" for x in findings(data)) + "</ul>")
    comp = paper_comparison(data)
    if comp is not None:
        md += ["### The paper's figures beside this study's", "", md_table(*comp), ""]
        hp.append("<h3>The paper's figures beside this study's</h3>" + html_table(*comp))
    if "agreement" in figures:
        rel = figures["agreement"].relative_to(out).as_posix()
        md += [f"![Agreement by subset]({rel})", ""]
        b64 = base64.b64encode(figures["agreement"].read_bytes()).decode()
        hp.append(f"<img alt='Agreement by subset' src='data:image/png;base64,{b64}'>")
    if head:
        h, rows = _table([{"name": k, "value": v} for k, v in head.items()])
        md += ["## Study", "", md_table(h, rows), ""]
        hp.append(html_table(h, rows))

    known = [k for k, _, _ in SECTIONS]
    sections = [(k, t, n) for k, t, n in SECTIONS if data.get(k) not in (None, [], {})]
    sections += [(k, k.replace("_", " ").capitalize(), "") for k, v in data.items()
                 if k not in known and not _is_scalar(v) and v not in ([], {})]
    for key, stitle, note in sections:
        md += [f"## {md_escape(stitle)}", ""]
        hp.append(f"<h2>{html.escape(stitle)}</h2>")
        if note:
            md += [f"_{note}_", ""]
            hp.append(f"<p class='note'>{html.escape(note)}</p>")
        if key in figures:
            rel = figures[key].relative_to(out).as_posix()
            md += [f"![{md_escape(stitle)}]({rel})", ""]
            b64 = base64.b64encode(figures[key].read_bytes()).decode()
            hp.append(f"<img alt='{html.escape(stitle)}' src='data:image/png;base64,{b64}'>")
        if _string_list(data[key]):
            md += [f"- {md_escape(x)}" for x in _string_list(data[key])] + [""]
            hp.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in _string_list(data[key])) + "</ul>")
        if isinstance(data[key], dict):
            for k, v in data[key].items():
                if _string_list(v):
                    md += [f"{md_escape(stitle)}, {md_escape(k)}:", ""] + [f"- {md_escape(x)}" for x in _string_list(v)] + [""]
                    hp.append(f"<p>{html.escape(stitle)}, {html.escape(str(k))}:</p><ul>"
                              + "".join(f"<li>{html.escape(x)}</li>" for x in _string_list(v)) + "</ul>")
        for ttitle, h, rows in _flatten_section(key, data[key], stitle):
            if ttitle != stitle:
                md += [f"### {md_escape(ttitle)}", ""]
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

