"""`rmtui report`: Markdown + HTML + PNG figures whose numbers are the summary's numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.report.document import fmt_num, human_name, parse_md_tables, write_report
from analysis.store import open_study


PNG = b"\x89PNG\r\n\x1a\n"


def _planted_summary() -> dict:
    feats = {"harmless": 2.1, "helpful": 1.1, "eloquent": 0.8, "sentiment": 0.75, "length": -0.0123}
    return {
        "n_pairs": 160800,
        "agreement": {"pre": {"agree": 91657, "disagree": 68000, "tie": 1143, "rate": 0.57},
                      "post": {"agree": 118992, "disagree": 41708, "tie": 100, "rate": 0.74}},
        "regimes": [{"regime": "stayed_aligned", "n": 77650, "share": 0.4829},
                    {"regime": "got_aligned", "n": 41438, "share": 0.2577},
                    {"regime": "resists_alignment", "n": 27642, "share": 0.1719},
                    {"regime": "reversed", "n": 14070, "share": 0.0875}],
        "imprint": [{"target": t, "feature": f, "estimate": e * k, "ci_low": e * k - 0.31, "ci_high": e * k + 0.29,
                     "p": 1.5e-7, "p_bonferroni": 3.3e-6, "n": 321600}
                    for t, k in (("pre", 0.5), ("post", 1.0), ("shift", 0.5)) for f, e in feats.items()],
        "theta_by_regime": [{"regime": "stayed_aligned", "mean": 3.25, "median": 2.5, "n": 77650},
                            {"regime": "resists_alignment", "mean": -7.125, "median": -6.0, "n": 27642}],
        "robustness": [{"outcome": "became_misaligned", "term": "chosen.sentiment_flip", "estimate": 0.117,
                        "ci_low": 0.046, "ci_high": 0.188, "p": 0.001, "n": 1608}],
    }


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path, obj


def test_report_tables_and_figures_carry_the_summary_numbers(tmp_path):
    data = _planted_summary()
    with open_study(tmp_path / "s.duckdb") as st:
        res = write_report(st, tmp_path / "rep", data=data)
    for p in (res.markdown, res.html, res.summary_json):
        assert p.exists() and p.stat().st_size > 0
    names = sorted(p.name for p in res.figures)
    assert names == ["imprint.png", "regimes.png", "robustness.png", "theta_by_regime.png"]
    # the first page leads with findings
    assert res.markdown.read_text().split("\n")[2] == "## Findings"
    for f in res.figures:
        b = f.read_bytes()
        assert b.startswith(PNG) and len(b) > 5000
    assert json.loads(res.summary_json.read_text()) == data

    md = res.markdown.read_text()
    tables = parse_md_tables(md)
    # the imprint table: every row's estimate and interval equal the summary's (4 significant digits)
    imp = next(rows for h, rows in tables if h[:3] == ["target", "feature", "estimate"])
    h = next(h for h, rows in tables if h[:3] == ["target", "feature", "estimate"])
    assert len(imp) == 15
    for rec in data["imprint"]:
        row = next(r for r in imp if r[0] == rec["target"] and r[1] == rec["feature"])
        for col in ("estimate", "ci_low", "ci_high", "p_bonferroni"):
            assert math.isclose(float(row[h.index(human_name(col))]), rec[col], rel_tol=1e-3, abs_tol=1e-9)
    assert "95% CI low" in h and "ci_low" not in h     # human column names
    reg = next(rows for h, rows in tables if h == ["regime", "n", "share"])
    assert [(r[0], int(r[1].replace(",", "")), float(r[2])) for r in reg] == \
        [(r["regime"], r["n"], r["share"]) for r in data["regimes"]]
    agr = next(rows for h, rows in tables if h[0] == "group" and "rate" in h)
    assert {r[0]: float(r[-1]) for r in agr} == {"pre": 0.57, "post": 0.74}
    # every number of the summary appears in the Markdown as the report formats it
    for path, v in _leaves(data):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            assert fmt_num(v) in md, (path, v)
    # HTML: self-contained (figures embedded), same tables
    html = res.html.read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "<td>resists_alignment</td><td>27,642</td><td>0.1719</td>" in html
    assert "Tagged findings" in md


def test_report_figures_plot_the_numbers():
    """The figures' artists hold the summary's numbers: estimates and intervals of the imprint in panels
    pre, post, shift; agreement by subset with its Wilson interval and the longer-wins baseline."""
    from analysis.report.document import figure_agreement, figure_coefficients

    data = _planted_summary()
    fig = figure_coefficients(data["imprint"][::-1], "imprint")       # rows in reverse: panels still ordered
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["pre", "post", "shift"]
    post = axes[1]
    feats = [t.get_text() for t in axes[0].get_yticklabels()]
    for rec in (r for r in data["imprint"] if r["target"] == "post"):
        j = feats.index(rec["feature"])
        marks = [l for l in post.lines if list(l.get_ydata()) == [j] and l.get_marker() == "o"]
        assert marks and marks[0].get_xdata()[0] == pytest.approx(rec["estimate"])
        ci = [l for l in post.lines if list(l.get_ydata()) == [j, j]]
        assert list(ci[0].get_xdata()) == pytest.approx([rec["ci_low"], rec["ci_high"]])
    stats = [{"role": role, "slice": sl, "value": v, "agreement": a, "agreement_low": a - 0.05,
              "agreement_high": a + 0.04, "decided": 100, "tie": 1}
             for role, base in (("pre", 0.55), ("post", 0.70))
             for sl, v, a in (("all", "all", base), ("subset", "harmless-base", base - 0.1),
                              ("subset", "helpful-base", base + 0.1))]
    base = [{"baseline": "longer_wins", "slice": "subset", "value": "helpful-base", "agreement": 0.6}]
    fig = figure_agreement(stats, base)
    ax = fig.axes[0]  # horizontal rows: 'all' first, then the subsets by post-D agreement, highest first
    assert [t.get_text() for t in ax.get_yticklabels()] == ["all", "helpful-base", "harmless-base"]
    post_pts = next(l for l in ax.lines if l.get_gid() == "agreement-post")
    assert list(post_pts.get_xdata()) == pytest.approx([0.70, 0.80, 0.60])
    ci = [l for l in ax.lines if l.get_gid() == "ci-pre"]
    assert [list(l.get_xdata()) for l in ci] == [pytest.approx([a - 0.05, a + 0.04]) for a in (0.55, 0.65, 0.45)]
    b = next(l for l in ax.lines if l.get_gid() == "baseline")
    assert list(b.get_ydata()) == [1] and list(b.get_xdata()) == pytest.approx([0.6])


def test_figures_stay_readable_at_60_subsets(tmp_path):
    """agreement_by_subset.png at 60 subsets (it was 7,359 x 418 px at 58): at most 1,600 px a side,
    horizontal rows sorted by post-D agreement with their intervals, the top and bottom 15 shown and
    the 30 between summarised in one row; the imprint and bar figures keep the same bounds."""
    import random

    from matplotlib.image import imread

    from analysis.report.document import _save, fig_bars, figure_agreement, figure_coefficients

    FIG_MAX_PX = 1600  # the bound

    rng = random.Random(3)
    post = {f"subset-{i:02d}": rng.uniform(0.3, 0.9) for i in range(60)}
    stats = [{"role": "post", "slice": "all", "value": "all", "agreement": 0.6, "agreement_low": 0.58,
              "agreement_high": 0.62}, {"role": "pre", "slice": "all", "value": "all", "agreement": 0.55,
                                         "agreement_low": 0.53, "agreement_high": 0.57}]
    for g, a in post.items():
        stats.append({"role": "post", "slice": "subset", "value": g, "agreement": a, "agreement_low": a - 0.05,
                      "agreement_high": a + 0.05})
        stats.append({"role": "pre", "slice": "subset", "value": g, "agreement": 1 - a, "agreement_low": 0.9 - a,
                      "agreement_high": 1.1 - a})
    fig = figure_agreement(stats)
    png = _save(fig, tmp_path / "agreement_by_subset.png")
    h, w = imread(png).shape[:2]
    assert max(w, h) <= FIG_MAX_PX and h > w / 2, (w, h)  # taller than wide: rows, not columns
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ranked = sorted(post, key=lambda g: -post[g])
    assert labels[0] == "all" and labels[1:16] == ranked[:15] and labels[17:] == ranked[-15:]
    assert labels[16].startswith("… 30 more subsets")
    pts = next(l for l in ax.lines if l.get_gid() == "agreement-post")
    xs = list(pts.get_xdata())
    assert xs[0] == pytest.approx(0.6) and xs[1:] == sorted(xs[1:], reverse=True)
    assert len([l for l in ax.lines if l.get_gid() == "ci-post"]) == 31
    rows = [{"target": t, "feature": f"f{i:03d}", "estimate": rng.gauss(0, 1), "ci_low": -3, "ci_high": 3, "p": 0.5}
            for t in ("pre", "post", "shift") for i in range(200)]
    h, w = imread(_save(figure_coefficients(rows, "imprint"), tmp_path / "imprint.png")).shape[:2]
    assert max(w, h) <= FIG_MAX_PX
    regimes = [{"regime": f"r{i}", "share": rng.random()} for i in range(80)]
    h, w = imread(fig_bars(regimes, tmp_path / "bars.png", "Regimes", "share of pairs")).shape[:2]
    assert max(w, h) <= FIG_MAX_PX


def test_findings_page_and_paper_comparison():
    from analysis.report.document import findings, paper_comparison

    data = {
        "datasets": ["hh-rlhf"],
        "agreement_stats": [{"role": "pre", "slice": "all", "value": "all", "agreement": 0.571, "agreement_low": 0.55,
                             "agreement_high": 0.59, "decided": 2390, "tie": 10},
                            {"role": "post", "slice": "all", "value": "all", "agreement": 0.62, "agreement_low": 0.6,
                             "agreement_high": 0.64, "decided": 2390, "tie": 10}],
        "paired_tests": [{"slice": "all", "value": "all", "n_both_decided": 2380, "reversed": 132, "got_aligned": 283,
                          "difference": 0.0634, "diff_low": 0.045, "diff_high": 0.082, "p": 1.2e-13}],
        "regime_stats": [{"slice": "all", "regime": r, "share": v, "share_low": v - 0.01, "share_high": v + 0.01,
                          "decided": 2380} for r, v in (("stayed_aligned", 0.45), ("got_aligned", 0.12),
                                                        ("resists_alignment", 0.32), ("reversed", 0.06))],
        "misalignment_by_gamma": [{"gamma": "c", "misalignment": 0.2, "decided": 900},
                                  {"gamma": "r", "misalignment": 0.5, "decided": 300}],
        "gamma_source": {"proxy": True},
        "labeler_agreement": [{"slice": "all", "value": "all", "agreement": 0.61}],
        "robustness": {"robustness": [
            {"variant": "at_risk", "outcome": "became_misaligned", "term": "chosen_x_down", "estimate": 0.0,
             "p_bh": 1.0, "events_flip": 0, "n_flip": 9},
            {"variant": "at_risk", "outcome": "became_misaligned", "term": "chosen_y_up", "estimate": None}]},
    }
    lines = findings(data)
    text = "\n".join(lines)
    assert "pre-D 0.571 [0.550, 0.590]" in text and "132 reversed vs 283 got aligned" in text and "1.2e-13" in text
    assert "32.0 % [31.0 %, 33.0 %]" in text
    assert "PROXY" in text and "no flip term survives BH correction (1 estimable, 1 not estimable" in text
    h, rows = paper_comparison(data)
    row = {r[0]: r for r in rows}
    assert row["agreement pre-D"][1:3] == ["0.570", "0.571"]
    assert row["resists alignment"][1:3] == ["17.2 %", "32.0 %"]
    assert row["misalignment, gamma = r"][1:] == ["43.9 %", "50.0 %", "gamma from proxies"]
    assert paper_comparison({"datasets": ["other"]}) is None


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_rm_dir, tiny_rm_dir_b):
    """A small real study (30 pairs, two tiny RMs, heuristic features, a fit), built once per module."""
    from analysis.pipeline.run import run_config

    from tests.analysis.pipeline.test_pipeline import _full_config

    d = tmp_path_factory.mktemp("built")
    run_config(_full_config(d, tiny_rm_dir, tiny_rm_dir_b, limit=15))
    return d / "s.duckdb"


def test_report_of_a_real_study_matches_summary_json(tmp_path, built):
    import shutil

    from analysis.fit import study_fit as fit
    from rmtui.cli import app

    study = tmp_path / "s.duckdb"
    shutil.copy(built, study)
    from analysis.store import triage

    with open_study(study) as st:
        tagged = st.df("SELECT pair_id, chosen_response FROM pairs ORDER BY pair_id LIMIT 1").iloc[0]
        triage.set_tags(st, tagged.pair_id, ["rm-error"])
        triage.set_note(st, tagged.pair_id, "the RM | prefers the rude answer")
    res = CliRunner().invoke(app, ["report", "--study", str(study), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "rep"
    assert (out / "report.md").exists() and (out / "report.html").exists()
    figs = sorted(f.name for f in (out / "figures").glob("*.png"))
    assert {"imprint.png", "regimes.png", "theta_by_regime.png"} <= set(figs)
    assert all(f.read_bytes().startswith(PNG) and f.stat().st_size > 2000 for f in (out / "figures").glob("*.png"))
    with open_study(study, read_only=True) as st:
        expected = json.loads(json.dumps(fit.summary(st), default=str))
    assert json.loads((out / "summary.json").read_text()) == expected
    sres = CliRunner().invoke(app, ["summary", "--study", str(study), "--json"])
    assert sres.exit_code == 0, sres.output
    assert json.loads(sres.output) == expected  # the report's numbers are `rmtui summary --json`'s
    md = (out / "report.md").read_text()
    n_checked = 0
    for path, v in _leaves(expected):
        if isinstance(v, float) and math.isfinite(v):
            assert fmt_num(v) in md, (path, v)
            n_checked += 1
    assert n_checked > 50
    # the imprint table's rows are the summary's rows
    tables = parse_md_tables(md)
    h, imp = next((h, rows) for h, rows in tables if h[:3] == ["target", "feature", "estimate"])
    assert len(imp) == len(expected["imprint"])
    for rec, row in zip(expected["imprint"], imp):
        assert (row[0], row[1]) == (rec["target"], rec["feature"])
        assert math.isclose(float(row[h.index("estimate")]), rec["estimate"], rel_tol=1e-3, abs_tol=1e-12)
    tri = next(rows for h, rows in tables if h[:2] == ["pair", "subset"])
    assert [r[0] for r in tri] == [tagged.pair_id]
    assert tri[0][5] == "rm-error" and tri[0][6] == "the RM | prefers the rude answer"
    assert tri[0][8][:40] == " ".join(tagged.chosen_response.split())[:40]


def test_export_cli_writes_filters_and_never_overwrites(tmp_path, built):
    from rmtui.cli import app

    runner = CliRunner()
    out = tmp_path / "resist.jsonl"
    with open_study(built, read_only=True) as st:
        n_resist = st.scalar("SELECT count(*) FROM pair_metrics WHERE regime = 'resists_alignment'")
        n_all = st.scalar("SELECT count(*) FROM pairs")
    res = runner.invoke(app, ["export", "--study", str(built), "--regime", "resists_alignment", "--format", "jsonl",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == n_resist and all(r["regime"] == "resists_alignment" for r in recs)
    before = out.read_bytes()
    res = runner.invoke(app, ["export", "--study", str(built), "--format", "jsonl", "-o", str(out)])
    assert res.exit_code != 0 and out.read_bytes() == before  # never overwritten without --force
    assert "exists" in str(res.exception)
    res = runner.invoke(app, ["export", "--study", str(built), "--format", "jsonl", "-o", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == n_all
    res = runner.invoke(app, ["export", "--study", str(built), "--format", "csv", "--subset", "helpful-base",
                              "-o", str(tmp_path / "h.csv")])
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_csv(tmp_path / "h.csv")
    assert len(df) == 15 and set(df["subset"]) == {"helpful-base"}
    res = runner.invoke(app, ["export", "--study", str(built), "--format", "xml", "-o", str(tmp_path / "x.xml")])
    assert res.exit_code != 0
    # the format follows the extension; a --format that contradicts it, a value the study lacks, or a
    # filter with no pairs is an error and writes nothing (they wrote empty or mislabelled files)
    res = runner.invoke(app, ["export", "--study", str(built), "--subset", "helpful-base", "-o", str(tmp_path / "e.md")])
    assert res.exit_code == 0 and "wrote" in res.output and (tmp_path / "e.md").exists()
    bad = [(["--format", "jsonl", "-o", str(tmp_path / "e1.csv")], "extension says csv"),
           (["--regime", "bogus", "-o", str(tmp_path / "e2.jsonl")], "--regime 'bogus'"),
           (["--subset", "nosuch", "-o", str(tmp_path / "e3.jsonl")], "helpful-base"),
           (["--tag", "nosuch", "-o", str(tmp_path / "e4.jsonl")], "--tag 'nosuch'"),
           (["--search", "zzqqxxnotthere", "-o", str(tmp_path / "e5.jsonl")], "nothing to export")]
    for args, said in bad:
        res = runner.invoke(app, ["export", "--study", str(built), *args])
        assert res.exit_code != 0, args
        assert said in res.output + str(res.exception), (args, res.output)
        assert not Path(args[-1]).exists() and not Path(args[-1] + ".meta.json").exists()
