"""``rmtui fit`` and ``rmtui summary``: the metrics of a study, computed and printed."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from analysis.textsafe import visible, visible_line

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, console, styled

SIG_NOTE = "markers on Bonferroni-adjusted p: * < 0.05, ** < 0.01, *** < 0.001"


def _split(v: Optional[str]) -> list[str] | None:
    if not v:
        return None
    return [x.strip() for x in v.split(",") if x.strip()]


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.2e}"
        return fmt.format(v)
    return str(v)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _p(v: Any) -> str:
    if v is None:
        return "-"
    return "<1e-300" if v == 0 else (f"{v:.1e}" if v < 1e-3 else f"{v:.3f}")


def _table(title: str, columns: list[str], rows: list[list[str]], *, left: int = 1) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i < left else "right", overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


@app.command()
def fit(
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    features: Optional[str] = typer.Option(None, help="Comma-separated features (featurizer.name); default: all "
                                            "features of the chosen featurizers."),
    featurizers: Optional[str] = typer.Option(None, help="Comma-separated featurizers, e.g. heuristic,llm "
                                               "(default: every featurizer with values)."),
    se: str = typer.Option("cluster", help="Standard errors of the imprint: cluster (by pair) or iid "
                           "(the paper's)."),
    pair_fe: bool = typer.Option(False, "--pair-fe", help="Within-pair estimates (pair fixed effects: "
                                 "chosen-minus-rejected differences, no intercept)."),
    standardize: bool = typer.Option(False, "--standardize", help="z-score continuous/count features "
                                     "(estimates per SD); binary ones stay raw."),
    pre: Optional[str] = typer.Option(None, help="pre-D model id or name (default: latest with role pre)."),
    post: Optional[str] = typer.Option(None, help="post-D model id or name (default: latest with role post)."),
    gamma_features: Optional[str] = typer.Option(
        None, help="Target features for gamma in priority order, e.g. llm.harmless,llm.helpful "
        "(s = 2*first + second)."),
    tie_tol: float = typer.Option(0.0, min=0.0, help="|r_chosen - r_rejected| <= TOL counts as a tie (default exact)."),
    no_drivers: bool = typer.Option(False, "--no-drivers", help="Skip the misalignment LPM/logit."),
) -> None:
    """Compute agreement, regimes, gamma, theta, feature imprint and drivers; store them as a fit."""
    from analysis.fit.study_fit import FitOptions, fit_study
    from analysis.store import open_study

    from analysis.choices import resolve

    se = resolve("--se", se, ("cluster", "iid", "hc1"))  # a unique prefix (cl, i) is enough
    opts = FitOptions(features=_split(features), featurizers=_split(featurizers), se=se, pair_fe=pair_fe,
                      standardize=standardize, pre=pre, post=post, gamma_features=_split(gamma_features),
                      tie_tol=tie_tol, drivers=not no_drivers)
    with open_study(study, create=False) as st:
        with console.status("fitting") as status:
            res = fit_study(st, opts, progress=lambda s: status.update(f"fitting: {s}"))
    console.print(styled("fit ", (res.fit_id, "bold"), f": {res.n_pairs:,} pairs, pre-D {res.pre_model_id or '-'}, "
                  f"post-D {res.post_model_id or '-'}, {len(res.features)} features, "
                  f"{len(res.imprint):,} imprint rows, {len(res.coefficients):,} other coefficients "
                  f"in {res.seconds:.2f} s"))
    for m in res.messages:
        console.print(f"  {m}", soft_wrap=True)
    console.print(f"see: rmtui summary --study {study}")


# -- what the summary prints by default: findings first, then the headline tables -----------------------
HEADLINE_IMPRINT = 8  # imprint rows in the default summary (largest shifts first)


def model_label(s: dict, model_id: Any) -> str:
    """A model as the summary names it: its name (else its path or hub id), never its hex id."""
    for m in s.get("models") or []:
        if m.get("model_id") == model_id:
            return visible_line(str(m.get("name") or m.get("path_or_hub_id") or f"unnamed {m.get('role') or 'model'}"))
    return "-" if model_id is None else "unknown model"


def single_value_slices(rows: list[dict], slice_key: str, value_key: str) -> set:
    """Slices (other than 'all') with one value only (one split, held-out unknown everywhere): their
    one row repeats the 'all' row, so the tables leave them out."""
    values: dict[Any, set] = {}
    for r in rows:
        values.setdefault(r.get(slice_key), set()).add(r.get(value_key))
    return {k for k, v in values.items() if k != "all" and len(v) <= 1}


def _findings_text(lines: list[str]) -> Text:
    """The report's findings (Markdown bullets with **bold** leads) as terminal text."""
    t = Text()
    for line in lines:
        body = line[2:] if line.startswith("- ") else line
        t.append("• ")
        for i, part in enumerate(visible(body).split("**")):
            t.append(part, style="bold" if i % 2 else "")
        t.append("\n")
    t.rstrip()
    return t


def _header(s: dict) -> None:
    fit = s.get("fit")
    bits = [f"{s['n_pairs']:,} pairs", f"{len(s['models'])} models"]
    if fit:
        bits += [f"pre-D {model_label(s, fit.get('pre_model_id'))}", f"post-D {model_label(s, fit.get('post_model_id'))}",
                 f"fit {str(fit.get('created_at') or '')[:19]}"]
    console.print(styled(("Study", "bold"), f" {visible_line(str(s['study']))}: " + " · ".join(bits)))


def _agreement_rows(s: dict) -> list[list[str]]:
    return [[f"{model_label(s, r['model_id'])} ({r['role'] or '-'})", _num(r["n"]), _num(r["tie"]),
             f"{_num(r['agreement'])} [{_num(r.get('agreement_low'))}, {_num(r.get('agreement_high'))}]",
             _num(r.get("misalignment"))]
            for r in s["agreement"] if r["group"] == "all"]


def _print_headline(s: dict) -> None:
    """Findings first, then agreement per RM, the regimes and the largest imprint shifts, one line a row
    at 80 columns; what else there is, and the notes, in a line each (`--all` prints every table)."""
    from analysis.report.document import findings

    _header(s)
    console.print(styled(("Findings", "bold underline")))
    console.print(_findings_text(findings(s)))
    shown = []
    if s["agreement"]:
        console.print(_table("Agreement per RM (share of the decided pairs, Wilson 95% CI)",
                             ["RM (role)", "pairs", "ties", "agreement [95% CI]", "misal."],
                             _agreement_rows(s)))
        shown.append("agreement")
    if s.get("regimes"):
        rows = [[r["regime"].replace("_", " "), _num(r["n"]), _pct(r["share"]), _pct(r["share_decided"])]
                for r in s["regimes"]]
        console.print(_table("Regimes (pre-D, post-D agreement; % of pairs)", ["regime", "pairs", "% of all",
                                                                             "% of decided"], rows))
        shown.append("regimes")
    imp = [r for r in s.get("imprint") or [] if r.get("target") in ("pre", "post", "shift")]
    if imp:
        from analysis.metrics.significance import significance_marker

        cell = {(r["target"], r["feature"]): r for r in imp}
        feats = list(dict.fromkeys(r["feature"] for r in imp))
        feats.sort(key=lambda f: -abs((cell.get(("shift", f)) or {}).get("estimate") or 0))

        def est(t: str, f: str) -> str:
            r = cell.get((t, f))
            return "-" if r is None else f"{_num(r['estimate'], '{:+.3f}')}{significance_marker(r['p_bonferroni']) or ''}"

        rows = [[visible_line(f), est("pre", f), est("post", f), est("shift", f)] for f in feats[:HEADLINE_IMPRINT]]
        more = len(feats) - len(rows)
        console.print(_table(f"Largest imprint shifts (reward per unit of the feature, {s.get('units') or 'raw'}; "
                             f"Bonferroni p: * < 0.05, ** < 0.01, *** < 0.001)"
                             f"{f'; {more} more with --all' if more > 0 else ''}",
                             ["feature", "pre-D", "post-D", "shift"], rows))
        shown.append("imprint")
    rest = [k for k in ("agreement by slice", "paired_tests", "baselines", "labeler_agreement", "regimes_by_gamma",
                        "regimes_by_subset", "theta_by_regime", "theta_by_gamma", "coefficients", "confusing",
                        "robustness") if (s.get(k) if k != "agreement by slice" else s.get("agreement"))]
    notes = len((s.get("fit") or {}).get("messages") or [])
    if rest or notes:
        console.print(styled(("more", "dim"), f": {len(rest)} more tables"
                             + (f" and {notes} fit notes" if notes else "") + ": rmtui summary --all "
                             f"(every number: --json)"), soft_wrap=True)
    _print_status_notes(s)


def _print_status_notes(s: dict) -> None:
    """What a reader must not miss, in the default summary too: the human ties beside agreement, a length
    truncation over 5 % (a length rule that beats an RM is in the Findings), incomplete or interrupted runs, library warnings."""
    _print_human(s.get("human") or {})
    for w in s.get("truncation_warnings") or []:
        console.print(styled(("warning", "yellow"), f": {w}"), soft_wrap=True)
    for m in s.get("missing") or []:
        console.print(styled(("not yet", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("stale") or []:
        console.print(styled(("stale", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("interrupted") or []:
        console.print(styled(("interrupted", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("incomplete_runs") or []:
        console.print(styled(("incomplete", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("library_warnings") or []:
        console.print(styled(("note", "yellow"), ": ", m), soft_wrap=True)


def _print_length_beats(s: dict) -> None:
    for b in s.get("length_beats_rm") or []:
        console.print(styled(("length beats the RM", "yellow"),
                             f": {b['baseline']} agrees on {_num(b['baseline_agreement'])} of {b['baseline_decided']:,} "
                             f"decided pairs, the {b['role']}-D RM on {_num(b['rm_agreement'])} of "
                             f"{b['rm_decided']:,}" + (" (intervals apart)" if b.get("apart") else "")), soft_wrap=True)
    for m in s.get("interrupted") or []:
        console.print(styled(("interrupted", "yellow"), ": ", m), soft_wrap=True)


def _print_summary(s: dict) -> None:
    _header(s)
    if s.get("pair_metrics_source"):
        console.print(f"pair metrics: {s['pair_metrics_source']}")

    # agreement
    if s["agreement"]:
        rows = []
        for r in (x for x in s["agreement"] if x["group"] == "all"):
            name = model_label(s, r["model_id"])
            rows.append([name if name == r["role"] else f"{name} ({r['role'] or '-'})", _num(r["n"]), _num(r["agree"]),
                         _num(r["disagree"]), _num(r["decided"]), _num(r["tie"]), _num(r["unscored"]),
                         _num(r.get("human_tie") or 0),
                         f"{_num(r['agreement'])} [{_num(r.get('agreement_low'))}, {_num(r.get('agreement_high'))}]",
                         _num(r.get("misalignment"))])
        console.print(_table(
            f"Agreement per RM, pair counts (tie: |diff| <= {s['tie_tol']:g} or identical texts; agreement = agree / "
            "decided, a share, Wilson 95% CI; misalignment = 1 - agreement; RM ties, unscored pairs and human ties "
            "counted beside, never in decided)",
            ["RM", "pairs", "agree", "disag.", "decided", "tie", "unsc.", "h.tie", "agreement [95% CI]", "misal."],
            rows))
        rows = []
        drop = single_value_slices([x for x in s["agreement"] if x["group"] != "all"], "group", "value")
        for r in (x for x in s["agreement"] if x["group"] != "all" and x["group"] not in drop):
            rows.append([model_label(s, r["model_id"]), f"{r['group']}={visible_line(str(r['value']))}", _num(r["n"]),
                         _num(r["tie"]),
                         f"{_num(r['agreement'])} [{_num(r.get('agreement_low'))}, {_num(r.get('agreement_high'))}]",
                         _num(r.get("misalignment"))])
        if rows:
            console.print(_table("Agreement per RM by subset, split and held-out (pairs; agreement a share of "
                                 "decided pairs; a slice with one value repeats 'all' and is left out)",
                                 ["RM", "slice", "pairs", "tie", "agreement [95% CI]", "misal."], rows, left=2))
    for r in s.get("truncation") or []:
        if r.get("n_truncated"):
            from analysis.metrics.truncation import truncation_line

            console.print(f"truncation: {truncation_line(r)}", soft_wrap=True)
    for w in s.get("truncation_warnings") or []:
        console.print(styled(("warning", "yellow"), f": {w}"), soft_wrap=True)
    if s.get("paired_tests"):
        drop = single_value_slices(s["paired_tests"], "slice", "value")
        rows = [[f"{r['slice']}={visible_line(str(r['value']))}" if r["slice"] != "all" else "all",
                 _num(r["n_both_decided"]), f"{_num(r['reversed'])}/{_num(r['got_aligned'])}",
                 f"{_num(r['agreement_pre'])}→{_num(r['agreement_post'])}",
                 f"{_num(r['difference'], '{:+.3f}')} [{_num(r['diff_low'], '{:+.3f}')}, {_num(r['diff_high'], '{:+.3f}')}]",
                 _p(r["p"]), _p(r.get("p_bh"))] for r in s["paired_tests"] if r["slice"] not in drop]
        console.print(_table("Pre vs post on the same pairs (pairs decided by both RMs): McNemar's exact test on "
                             "reversed vs got aligned; agreement pre→post and the difference post - pre (shares) "
                             "with a paired Wald 95% CI; p BH: Benjamini-Hochberg across the tests of one slice "
                             "(all subsets together)",
                             ["slice", "pairs", "rev/got", "pre→post", "difference [95% CI]", "p", "p BH"], rows))
    _print_length_beats(s)
    if s.get("baselines"):
        rows = [[r["baseline"], "all" if r["slice"] == "all" else f"{r['slice']}={visible_line(str(r['value']))}",
                 _num(r["decided"]), _num(r["tie"]),
                 f"{_num(r['agreement'])} [{_num(r['agreement_low'])}, {_num(r['agreement_high'])}]"]
                for r in s["baselines"] if r["slice"] in ("all", "subset")]
        meth = next((r["method"] for r in s["baselines"] if r["baseline"] == "length_logit"), "")
        console.print(_table(f"What length alone gets (pairs; agreement a share of the pairs the rule decides, "
                             f"Wilson 95% CI; length_logit: {meth})",
                             ["baseline", "slice", "decided", "tie", "agreement [95% CI]"], rows, left=2))

    # regimes (paper's Table 1)
    if s.get("regimes"):
        rows = [[r["regime"], _num(r["n"]), _pct(r["share"]), _pct(r["share_decided"])] for r in s["regimes"]]
        console.print(_table("Regimes (pre-D, post-D agreement; pairs and % of them); 'of decided' leaves ties "
                             "and unscored out like the paper's Table 1", ["regime", "pairs", "share", "of decided"],
                             rows))
        if s.get("misalignment"):
            m = s["misalignment"]
            console.print(f"post-D misalignment: {_pct(m['misalignment'])} of {m['decided']:,} decided pairs "
                          f"(= 1 - post-D agreement; {m.get('tie', 0):,} ties and {m.get('unscored', 0):,} unscored "
                          "left out)")
        if s.get("ties"):
            t = s["ties"]
            console.print(f"ties: pre {t['pre']:,}, post {t['post']:,}, both {t['both']:,} "
                          f"(identical pairs {t['identical_pairs']:,})")
    _print_human(s.get("human") or {})
    gsrc = s.get("gamma_source") or {}
    if gsrc.get("caveat"):
        console.print(styled(("caveat", "yellow"), f": {gsrc['caveat']}"), soft_wrap=True)
    if s.get("labeler_agreement"):
        drop = single_value_slices(s["labeler_agreement"], "slice", "value")
        rows = [["all" if r["slice"] == "all" else f"{r['slice']}={visible_line(str(r['value']))}", _num(r["n"]),
                 _num(r["c"]), _num(r["i"]), _num(r["r"]), _num(r["unlabelled"]),
                 f"{_num(r['agreement'])} [{_num(r['agreement_low'])}, {_num(r['agreement_high'])}]"]
                for r in s["labeler_agreement"] if r["slice"] not in drop]
        kind = "PROXY target labels" if gsrc.get("proxy") else "target labels"
        console.print(_table(f"How often the {kind} behind gamma side with the human (pair counts; agreement "
                             "= c / (c + r), a share, Wilson 95% CI)",
                             ["slice", "pairs", "c", "i", "r", "unlab.", "agreement [95% CI]"],
                             rows))
    regs = ["stayed_aligned", "got_aligned", "resists_alignment", "reversed"]
    for key, by, title in (("regimes_by_gamma", "gamma", "Regimes by LM-labeler preference gamma (c: labeler "
                            "agrees with the human, i: indifferent, r: disagrees)"),
                           ("regimes_by_subset", "subset", "Regimes by subset")):
        rr = s.get(key) or []
        if not rr:
            continue
        groups = list(dict.fromkeys(r[by] for r in rr))
        rows = []
        mis = {m[by]: m for m in (s.get(f"misalignment_by_{by}") or [])}
        for g in groups:
            cells = {r["regime"]: r for r in rr if r[by] == g}
            n = sum(c["n"] for c in cells.values())
            rows.append([str(g) if g is not None else "(none)", _num(n)]
                        + [f"{cells[x]['n']:,}\n{_pct(cells[x]['share_decided'])}" for x in regs]
                        + [f"{cells['tie']['n']:,}/{cells['unscored']['n']:,}",
                           _pct(mis.get(g, {}).get("misalignment"))])
        console.print(_table(title + "; counts and % of decided pairs",
                             [by, "pairs", "stayed", "got", "resists", "reversed", "tie/unsc", "post-D misal."],
                             rows))

    # imprint
    imp = s.get("imprint") or []
    if imp:
        from analysis.metrics.significance import significance_marker

        feats = list(dict.fromkeys(r["feature"] for r in imp))
        targets = [t for t in ("pre", "post", "shift") if any(r["target"] == t for r in imp)]
        cell = {(r["target"], r["feature"]): r for r in imp}
        rows = []
        for f in feats:
            row = [f]
            for t in targets:
                r = cell.get((t, f))
                if r is None:
                    row.append("-")
                    continue
                row.append(f"{_num(r['estimate'])}{significance_marker(r['p_bonferroni']) or ''}\n"
                           f"[{_num(r['ci_low'], '{:.2f}')}, {_num(r['ci_high'], '{:.2f}')}]")
            vif = cell.get((targets[0], f), {}).get("vif")
            row.append(_num(vif, "{:.1f}"))
            rows.append(row)
        n = imp[0]["n"]
        r2 = {t: next((r["r2"] for r in imp if r["target"] == t), None) for t in targets}
        console.print(_table(
            f"Feature imprint: OLS of reward on features, estimate and 95% CI; n = {n:,} "
            f"{'pairs, within-pair (pair FE)' if s.get('pair_fe') else 'texts'}; SE {s.get('se_label') or s.get('se_type')}; "
            f"units: {s.get('units') or 'raw'}; R^2 " + ", ".join(f"{t} {_num(v)}" for t, v in r2.items())
            + f"; {SIG_NOTE}", ["feature"] + targets + ["VIF"], rows))

    # theta
    for key, by in (("theta_by_regime", "regime"), ("theta_by_gamma", "gamma")):
        rr = s.get(key) or []
        if rr:
            rows = [[str(r[by]) if r[by] is not None else "(none)", _num(r["n"]), _num(r["n_nan"]),
                     _num(r["mean"], "{:.2f}"), _num(r["median"], "{:.2f}"), _num(r["n_pos"]), _num(r["n_neg"]),
                     _p(r["sign_test_p"])] for r in rr]
            console.print(_table(f"Reward shift theta (degrees, u=(pre r_c, r_r) -> v=(post r_c, r_r)) by {by}; "
                                 "sign test: binomial, positives vs negatives",
                                 [by, "pairs", "no angle", "mean", "median", "> 0", "< 0", "sign p"], rows))

    # other regressions
    titles = {"theta": "OLS of theta on chosen-/rejected-side features (estimate in degrees per unit)",
              "misalignment_lpm": "Misalignment drivers: linear probability model (ties left out; estimate = "
                                  "change in probability per unit)",
              "misalignment_logit": "Misalignment drivers: logit (ties left out; estimate in log-odds per unit)",
              "imprint_joint_wald": "Imprint: joint Wald F tests that every coefficient of a group is 0 "
                                    "(estimate = F statistic, not a coefficient)"}
    for a, rr in (s.get("coefficients") or {}).items():
        if not rr:
            continue
        if a == "imprint_joint_wald":  # one joint test per reward (target): label each row with it
            rows = [[f"{r.get('target')}: {visible_line(str(r['term']))}", _num(r["estimate"], "{:.2f}"), _p(r["p"])]
                    for r in rr]
            console.print(_table(f"Imprint: joint Wald F tests that every coefficient of a group is 0 (F statistic, p; n = {rr[0]['n']:,} texts, SE "
                                 f"{rr[0]['se_type']})", ["reward: features tested together", "F", "p"], rows))
            continue
        rows = [[visible_line(str(r["term"])), f"{_num(r['estimate'])}{'' if r['term'] == 'const' else _sig(r['p_bonferroni'])}",
                 _num(r["se"]), f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]", _p(r["p"]),
                 _p(r["p_bonferroni"])] for r in rr]
        console.print(_table(f"{titles.get(a, a)}; n = {rr[0]['n']:,}, SE {rr[0]['se_type']}; {SIG_NOTE}",
                             ["term", "estimate", "se", "95% CI", "p", "p_bonf"], rows))

    if s.get("confusing"):
        c = s["confusing"]
        rows = [[k, _num(c[k]), _num(c.get(k + "_unknown"))] for k in
                ("same_target_labels", "near_identical", "labeler_sides_with_rm", "confusing")]
        rows.append(["identical", _num(c["identical"]), "-"])
        console.print(_table(f"Confusing entries (pairs; near-identical: {c.get('near_identical_measure')})",
                             ["flag", "pairs", "unknown"], rows))

    for name, rr in (s.get("robustness") or {}).items():
        if name == "robustness" and rr and "variant" in rr[0]:
            for t in _robustness_table(rr):
                console.print(t)
        elif name == "sensitivity" and rr and "mean_change" in rr[0]:
            console.print(_sensitivity_table(s, rr))
        else:
            console.print(_generic_table(f"Robustness: table {name}", rr))

    fit_msgs = (s.get("fit") or {}).get("messages") or []
    if fit_msgs:
        console.print(styled(("Fit notes", "bold")))
        for m in fit_msgs:
            console.print(f"  {m}", soft_wrap=True)
    for m in s.get("missing") or []:
        console.print(styled(("not yet", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("stale") or []:
        console.print(styled(("stale", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("interrupted") or []:
        console.print(styled(("interrupted", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("incomplete_runs") or []:
        console.print(styled(("incomplete", "yellow"), ": ", m), soft_wrap=True)
    for m in s.get("library_warnings") or []:
        console.print(styled(("note", "yellow"), ": ", m), soft_wrap=True)


ROBUSTNESS_VARIANTS = {"at_risk": "rewrites at risk", "all_rewrites": "all rewrites"}


def _robustness_table(rr: list[dict]) -> list[Table]:
    """The robustness score, one table per variant and outcome (so that a term is one line, two when its
    name is long, at 80 columns): flip term, events with the flip / rewrites with it, estimate (change in
    the outcome's probability) with its 95% CI, p and p BH; † marks small cells (Fisher exact p,
    Newcombe interval), ‡ a term that could not be estimated."""
    groups: dict[tuple, list[dict]] = {}
    for r in rr:
        if r.get("term") in ("intercept",):
            continue
        groups.setdefault((r.get("variant"), r.get("outcome")), []).append(r)
    tables = []
    for (variant, outcome), rows_in in groups.items():
        rows, never = [], []
        for r in rows_in:
            if r.get("estimate") is None and not r.get("n_flip"):  # no rewrite made this flip: one line for all
                never.append(visible_line(str(r.get("term"))))
                continue
            status = str(r.get("status") or "")
            mark = "" if status in ("", "ok") else ("†" if status.startswith("small") else "‡")
            est = r.get("estimate")
            rows.append([visible_line(str(r.get("term"))) + mark,
                         "-" if r.get("n_flip") is None else f"{r.get('events_flip')}/{r.get('n_flip')}",
                         "-" if est is None else f"{_num(est, '{:+.3f}')}{_sig(r.get('p_bh'))} "
                         f"[{_num(r.get('ci_low'), '{:+.3f}')}, {_num(r.get('ci_high'), '{:+.3f}')}]",
                         _p(r.get("p")), _p(r.get("p_bh"))])
        n = next((r.get("n") for r in rows_in if r.get("n") is not None), None)
        events = next((r.get("events") for r in rows_in if r.get("events") is not None), None)
        title = (f"Robustness, {ROBUSTNESS_VARIANTS.get(variant, visible_line(str(variant or '-')))}: "
                 f"{visible_line(str(outcome)).replace('_', ' ')} ~ flips (LPM, post-D RM; {events}/{n} events; "
                 "estimate = change in probability; † small cells: Fisher exact p, Newcombe CI; ‡ not estimable; "
                 "p BH across the table)")
        t = _table(title, ["flip term", "ev/flips", "estimate [95% CI]", "p", "p BH"], rows)
        if never:
            t.caption, t.caption_justify = f"no rewrite made these flips: {', '.join(never)}", "left"
        tables.append(t)
    return tables


def _sensitivity_table(s: dict, rr: list[dict]) -> Table:
    """Mean reward change per rewrite, per rewriter, side and RM (the RM by name)."""
    rows = [[visible_line(str(r.get("perturbation"))), str(r.get("side")), model_label(s, r.get("model_id")),
             f"{_num(r.get('mean_change'), '{:+.3f}')} [{_num(r.get('ci_low'), '{:+.3f}')}, "
             f"{_num(r.get('ci_high'), '{:+.3f}')}]", _num(r.get("n"))] for r in rr]
    return _table("Robustness: reward change per rewrite (new - old reward, mean with 95% CI; n rewrites)",
                  ["rewriter", "side", "RM", "mean change [95% CI]", "n"], rows, left=3)


def _generic_table(title: str, rr: list[dict]) -> Table:
    """Any table's rows: estimate with a significance marker and one 95% CI column when present."""
    keys = [k for k in rr[0].keys() if k not in ("fit_id", "se_type")]
    has_ci = "ci_low" in keys and "ci_high" in keys
    cols = [("95% CI" if (k == "ci_low" and has_ci) else k) for k in keys if not (has_ci and k == "ci_high")]
    rows = []
    for r in rr:
        row = []
        for k in cols:
            if k == "95% CI":
                row.append(f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]")
            elif k == "estimate":
                row.append(f"{_num(r[k])}{_sig(r.get('p_bonferroni', r.get('p')))}")
            elif k.startswith("p") and k in ("p", "p_bonferroni", "p_bh", "p_value"):
                row.append(_p(r[k]))
            else:
                row.append(_num(r[k]))
        rows.append(row)
    se = rr[0].get("se_type")
    left = sum(1 for k in cols if isinstance(rr[0].get(k), str))
    return _table(title + (f"; SE {se}" if se else "") + ("; * p < 0.05, ** < 0.01, *** < 0.001" if "estimate" in cols else ""),
                  cols, rows, left=left)


def _sig(p: Any) -> str:
    from analysis.metrics.significance import significance_marker

    return significance_marker(p)


def _print_human(h: dict) -> None:
    """Human ties (left out of agreement and regimes) and, with several annotators, unanimous vs split."""
    if not h or not (h.get("ties") or h.get("with_votes")):
        return
    if h.get("ties"):
        console.print(f"human ties: {h['ties']:,} pairs (stored; left out of agreement, regimes and the imprint)")
    if not h.get("with_votes"):  # one label per pair: no votes to speak of
        return
    console.print(f"pairs with several votes: {h['with_votes']:,} ({h['unanimous']:,} unanimous, "
                  f"{h['split']:,} split)")
    rows = [[r["consensus"], _num(r["n"]), _num(r["decided_post"]), _num(r["disagree_post"]),
             _pct(r["misalignment_post"]), _num(r["mean_annotator_agreement"])] for r in h.get("by_consensus", [])]
    if rows:
        console.print(_table("Post-D RM against the humans by how they decided (a split pair the RM gets "
                             "'wrong' is a weaker finding than a unanimous one)",
                             ["humans", "pairs", "decided", "RM disagrees", "misal.", "annot. agreement"], rows))


@app.command()
def suspects(
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    top: int = typer.Option(20, "--top", "-n", min=1, help="How many pairs to list."),
    out: Optional[str] = typer.Option(None, "-o", "--output", help="Also export these pairs (jsonl/csv/md/parquet "
                                      "by extension) with their texts, scores and features."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output file if it exists."),
) -> None:
    """Pairs whose human label the study's evidence most suspects (both RMs against it, the labeler)."""
    from analysis.store import open_study
    from analysis.store import metrics as ms

    with open_study(study, create=False, read_only=out is None) as st:
        df = ms.suspects(st, top)
        if df.empty:
            console.print("no suspect scores yet: run rmtui fit")
            raise typer.Exit(1)
        rows = [[r.pair_id[:12], str(r.subset), _num(r.margin_pre, "{:+.2f}"), _num(r.margin_post, "{:+.2f}"),
                 str(r.gamma or "-"), _num(r.suspect_score, "{:.2f}")] for r in df.itertuples()]
        console.print(_table("Suspected label errors (score = -mean z-margin of the RMs + 0.5 x labeler against "
                             "the human; highest first; the app sorts by it as 'suspect')",
                             ["pair", "subset", "margin pre", "margin post", "gamma", "score"], rows))
        if out:
            from analysis.report.export import export_pairs

            res = export_pairs(st, list(df["pair_id"]), None, out, overwrite=force, sort=("suspect", True))
            console.print(f"exported {len(df):,} pairs to {getattr(res, 'path', out)}")


@app.command()
def summary(
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the same numbers as JSON."),
    all_tables: bool = typer.Option(False, "--all", "-a", help="Print every table (agreement by slice, paired "
                                    "tests, baselines, gamma and subset breakdowns, theta, drivers, robustness) "
                                    "instead of the findings and the headline tables."),
) -> None:
    """The findings and the headline tables (agreement, regimes, largest imprint shifts); --all for every
    table, --json for every number."""
    from analysis.fit.study_fit import summary as make_summary
    from analysis.store import open_study

    with open_study(study, read_only=True) as st:
        s = make_summary(st)
    if as_json:
        print(json.dumps(s, indent=1))
        return
    if all_tables:
        _print_summary(s)
    else:
        _print_headline(s)
