"""Issue 24, the statistics side: numbers a researcher can quote. Planted effects and hand-computed answers
on real DuckDB studies; the CLI as a user runs it; the app through App.run_test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.datasets.ingest import ingest
from analysis.datasets.readers import ReadOptions
from analysis.datasets.shapes import parse_map
from analysis.store import open_study
from tests.helpers.cli import run_cli

# -- planted ties: a pairwise set in its published shape ("response 1"/"response 2", 0 = first,
# 1 = second, 2 = tie), a quarter of the pairs human-tied ------------------------------------------

N_PAIRS = 40


def _planted_rows():
    """Per pair i: (label, pre margin A-B, post margin A-B). i % 4 == 3: a human tie (10 pairs) whose rewards
    side with A (folding ties in as 'A won' would raise agreement). Of the 30 decided pairs: pre agrees on
    18, disagrees on 9, ties 3 -> 18 / 27; post agrees on 21, disagrees 6, ties 3 -> 21 / 27."""
    rows = []
    k = 0
    for i in range(N_PAIRS):
        if i % 4 == 3:
            rows.append((2, 1.0, 1.0))
            continue
        label = k % 2  # 0: response 1 preferred, 1: response 2
        sign = 1.0 if label == 0 else -1.0  # a positive A-B margin agrees when A was preferred
        pre = sign * (1.0 if k < 18 else (-1.0 if k < 27 else 0.0))
        post = sign * (1.0 if k < 21 else (-1.0 if k < 27 else 0.0))
        rows.append((label, pre, post))
        k += 1
    return rows


def build_planted_ties(tmp_path):
    f = tmp_path / "pairwise-ties.jsonl"
    rows = _planted_rows()
    f.write_text("\n".join(json.dumps({
        "prompt": f"Question {i}: what is {i} plus {i}?", "response 1": f"It is {2 * i}, I think ({i}).",
        "response 2": f"Perhaps {i} or so ({i}).", "label": lab, "category": "math" if i < 20 else "chat"})
        for i, (lab, _pre, _post) in enumerate(rows)) + "\n")
    path = tmp_path / "ties.duckdb"
    mapping, shape = parse_map(["prompt=prompt,a=response 1,b=response 2,label=label,subset=category"],
                               label="a=0,b=1,tie=2")
    with open_study(path) as st:
        res = ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        assert res.n_read == N_PAIRS and res.n_ties == 10
        texts = st.df("SELECT t.response, t.text_id FROM texts t")
        tid = dict(zip(texts["response"], texts["text_id"]))
        with st.transaction() as cur:
            for mid, role, col in (("rm-pre", "pre", 1), ("rm-post", "post", 2)):
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, now())",
                            [mid, mid, role])
                sc = []
                for i, r in enumerate(rows):
                    sc.append((mid, tid[f"It is {2 * i}, I think ({i})."], r[col]))
                    sc.append((mid, tid[f"Perhaps {i} or so ({i})."], 0.0))
                cur.register("_s", pd.DataFrame(sc, columns=["model_id", "text_id", "reward"]))
                cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
                cur.unregister("_s")
    return path


WANT = {"pre": (18, 27, 3), "post": (21, 27, 3)}  # agree, decided, RM ties


def test_agreement_stats_leave_human_ties_out_and_count_them_beside(tmp_path):
    from analysis.fit.study_fit import fit_study, summary

    path = build_planted_ties(tmp_path)
    with open_study(path) as st:
        fit_study(st)
        stored = st.df("SELECT role, slice, value, agree, decided, tie, human_tie, agreement FROM agreement_stats")
        s = summary(st)
    allr = stored[stored["slice"] == "all"].set_index("role")
    for role, (agree, dec, tie) in WANT.items():
        r = allr.loc[role]
        assert (r["agree"], r["decided"], r["tie"], r["human_tie"]) == (agree, dec, tie, 10)
        assert r["agreement"] == pytest.approx(agree / dec)
    # per subset too: 'math' holds pairs 0-19 (5 human ties), 'chat' 20-39 (5)
    sub = stored[(stored["slice"] == "subset")]
    assert sub.groupby("role")["decided"].sum().to_dict() == {"post": 27, "pre": 27}
    assert set(sub["human_tie"]) == {5}
    js = {r["role"]: r for r in s["agreement_stats"] if r["slice"] == "all"}
    txt = {r["role"]: r for r in s["agreement"] if r["group"] == "all"}
    for role, (agree, dec, _tie) in WANT.items():
        assert js[role]["decided"] == txt[role]["decided"] == dec
        assert js[role]["agreement"] == pytest.approx(txt[role]["agreement"]) == pytest.approx(agree / dec)
        assert js[role]["human_tie"] == txt[role]["human_tie"] == 10


async def test_every_consumer_prints_the_same_share_and_denominator(tmp_path):
    """CLI summary (text and --json), the report's Markdown (Findings and the first agreement table) and
    the app's regimes screen: the same agreement over the same decided pairs, human ties shown beside."""
    from rmtui.app import RmtuiApp

    path = build_planted_ties(tmp_path)
    r = run_cli("fit", "--study", path)
    assert r.code == 0, r.all
    js = run_cli("summary", "--study", path, "--json")
    assert js.code == 0, js.all
    data = json.loads(js.out)
    stats = {x["role"]: x for x in data["agreement_stats"] if x["slice"] == "all"}
    for role, (agree, dec, _t) in WANT.items():
        assert (stats[role]["decided"], stats[role]["human_tie"]) == (dec, 10)
        assert stats[role]["agreement"] == pytest.approx(agree / dec)
    shares = {role: f"{a / d:.3f}" for role, (a, d, _t) in WANT.items()}  # 0.667, 0.778

    text = run_cli("summary", "--study", path, "--all")  # the full per-RM table: decided and human-tie columns
    assert text.code == 0, text.all
    row = {role: next(ln for ln in text.out.splitlines() if f"rm-{role} ({role})" in ln) for role in WANT}
    for role, (agree, dec, tie) in WANT.items():
        cells = row[role].split()
        assert shares[role] in cells and str(dec) in cells and "10" in cells, row[role]

    rep = run_cli("report", "--study", path, "-o", tmp_path / "rep")
    assert rep.code == 0, rep.all
    md = (tmp_path / "rep" / "report.md").read_text()
    first = next(ln for ln in md.splitlines() if ln.startswith("- **Agreement**"))
    for role, (agree, dec, tie) in WANT.items():
        assert f"{role}-D {shares[role]}" in first and f"({dec} decided, {tie} ties" in first, first
    assert "10 human ties" in first
    table = md[md.index("Agreement and misalignment per RM and slice"):]
    table = table[: table.index("\n\n", table.index("|"))]
    alls = [ln for ln in table.splitlines() if "| all | all |" in ln]
    assert len(alls) == 2 and all(" 27 " in ln and " 10 " in ln for ln in alls), table

    app = RmtuiApp(path, keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(160, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("m")  # the regimes screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        line = " ".join(str(app.screen.query_one("#agreement").render()).split())
    for role, (agree, dec, tie) in WANT.items():
        assert f"{role}-D {shares[role]} of {dec} decided" in line, line
    assert "human ties 10 (left out)" in line


# -- robustness: one tie rule for every variant (item 13), small cells tested by pair (item 12) ----------

def _rob_changes(margin_before, margin_after, pair=None, side=None):
    from analysis.metrics import robustness as M  # noqa: F401

    n = len(margin_before)
    mb, ma = np.asarray(margin_before, float), np.asarray(margin_after, float)
    return pd.DataFrame({
        "rewrite_id": [f"r{i}" for i in range(n)], "pair_id": pair or [f"p{i}" for i in range(n)],
        "side": side or ["chosen"] * n, "margin_before": mb, "margin_after": ma,
        "became_misaligned": ((mb > 0) & (ma <= 0)).astype(int),  # what reward_changes wrote with no tolerance
        "became_aligned": ((mb <= 0) & (ma > 0)).astype(int)})


def test_all_rewrites_uses_the_fits_tie_tolerance():
    """|margin| <= tol is a tie in every variant: with tol 0.02, a margin of 0.01 is not aligned, so a rewrite
    from +0.01 to -0.5 is no event and one from +0.5 to +0.01 is (a tie counts as not aligned)."""
    from analysis.metrics import robustness as M

    before = [0.01, 0.5, 0.5, 0.5, -0.5, 0.01, 0.3]
    after = [-0.5, 0.01, -0.5, 0.6, 0.015, 0.5, 0.2]
    ch = _rob_changes(before, after)
    _rows, y, _ = M.at_risk_rows(ch, "became_misaligned", tie_tol=0.02, variant="all_rewrites")
    # by hand, aligned = margin > 0.02: rewrites 1 (0.5 -> 0.01) and 2 (0.5 -> -0.5) become not aligned
    assert y.tolist() == [0, 1, 1, 0, 0, 0, 0]
    _rows, y, _ = M.at_risk_rows(ch, "became_aligned", tie_tol=0.02, variant="all_rewrites")
    # 5 (0.01 -> 0.5) becomes aligned; 4 (-0.5 -> 0.015) only reaches a tie
    assert y.tolist() == [0, 0, 0, 0, 0, 1, 0]
    # the per-rewrite columns follow the same rule
    rw = pd.DataFrame({"rewrite_id": ["a", "b"], "side": ["chosen", "chosen"], "original_text_id": ["c1", "c2"],
                       "new_text_id": ["n1", "n2"], "other_text_id": ["o1", "o2"]})
    sc = pd.DataFrame({"model_id": "m", "role": "post", "text_id": ["c1", "n1", "o1", "c2", "n2", "o2"],
                       "reward": [0.5, 0.01, 0.0, 0.01, -0.5, 0.0]})
    rc = M.reward_changes(rw, sc, tol=0.02).set_index("rewrite_id")
    assert rc.loc["a", "became_misaligned"] == 1 and bool(rc.loc["a", "tie_after"])
    assert rc.loc["b", "became_misaligned"] == 0 and rc.loc["b", "agree_before"] == 0


def test_small_cells_respect_the_pairing():
    """50 pairs, both sides rewritten (100 rewrites), outcome and flip shared by a pair's two rewrites: the
    flip is on 4 pairs (8 rewrites), 3 of them with events (6 events), 2 more event pairs without the flip.
    Fisher on the 100 rewrites (6/8 vs 4/92) treats them as independent; the pair-level answer is the
    hypergeometric tail over pairs: P(X >= 3), X ~ H(50 pairs, 5 event pairs, 4 flip pairs) = 455 / 230,300,
    two-sided 2 x that = 0.00395."""
    from math import comb

    from scipy.stats import fisher_exact

    from analysis.metrics import robustness as M

    pairs = [f"p{i:02d}" for i in range(50) for _ in range(2)]
    sides = ["chosen", "rejected"] * 50
    flip_pair = np.zeros(50, int)
    flip_pair[:4] = 1
    event_pair = np.zeros(50, int)
    event_pair[[0, 1, 2, 10, 11]] = 1
    flip = np.repeat(flip_pair, 2)
    after = np.where(np.repeat(event_pair, 2) == 1, -1.0, 1.0)
    ch = _rob_changes(np.ones(100), after, pair=pairs, side=sides)
    ind = pd.DataFrame({"chosen_x_down": flip}, index=ch["rewrite_id"])
    t, _ = M.robustness_score(ch, ind, variants=("at_risk",), outcomes=("became_misaligned",))
    row = t.set_index("term").loc["chosen_x_down"]
    hand = 2 * (comb(5, 3) * comb(45, 1) + comb(5, 4)) / comb(50, 4)
    assert hand == pytest.approx(0.003951, abs=1e-6)
    assert row["p"] == pytest.approx(hand, abs=0.0015)  # Monte Carlo: 9,999 draws
    assert row["p_method"].startswith("permutation by pair")
    fisher = fisher_exact([[6, 2], [4, 88]]).pvalue
    assert fisher < 1e-5 and row["p_exact"] == pytest.approx(fisher)  # what the table used to print as p
    assert "permutation test by pair" in row["status"]
    # one rewrite per pair: rows are independent and Fisher's exact test is the right one
    one = _rob_changes(np.ones(100), after)
    t1, _ = M.robustness_score(one, pd.DataFrame({"chosen_x_down": flip}, index=one["rewrite_id"]),
                               variants=("at_risk",), outcomes=("became_misaligned",))
    r1 = t1.set_index("term").loc["chosen_x_down"]
    assert r1["p_method"].startswith("Fisher") and r1["p"] == pytest.approx(fisher)


# -- the misalignment logit under quasi-separation (item 11) ---------------------------------------------

def test_firth_matches_the_half_added_2x2_table():
    """One binary regressor + intercept: Firth's slope = log odds ratio with 1/2 added to each cell, also
    when a cell is empty (x = 1: 10 of 10 events; x = 0: 15 of 40), where the MLE is infinite."""
    from analysis.metrics.firth import firth_logit, separated_terms

    for ev1 in (10, 7):
        x = np.r_[np.ones(10), np.zeros(40)]
        y = np.r_[np.ones(ev1), np.zeros(10 - ev1), np.ones(15), np.zeros(25)]
        f = firth_logit(np.column_stack([np.ones(50), x]), y)
        hand = np.log((ev1 + 0.5) * 25.5 / ((10 - ev1 + 0.5) * 15.5))
        assert f.converged and f.beta[1] == pytest.approx(hand, abs=1e-6)
        assert separated_terms(x[:, None], y, ["x"]) == (["x"] if ev1 == 10 else [])


def test_separated_logit_term_gets_firth_not_an_artefact_p():
    """A feature on the chosen side of 12 pairs, all 12 misaligned (the post-D RM prefers rejected there):
    the MLE does not exist. The table must carry Firth's finite estimate, a p from the penalised LR test,
    and say so; an unseparated term keeps a sensible estimate."""
    from analysis.metrics.drivers import misalignment_drivers
    from analysis.metrics.firth import FIRTH_SE_TYPE, firth_logit

    rng = np.random.default_rng(0)
    n = 300
    sep = np.zeros(n)
    sep[:12] = 1
    noise = rng.integers(0, 2, n).astype(float)
    mis = (rng.random(n) < 0.3).astype(int)
    mis[:12] = 1
    frame = pd.DataFrame({"agree_post": pd.array(1 - mis, dtype="Int64"), "chosen:sep": sep, "chosen:noise": noise})
    _lpm, logit, msgs = misalignment_drivers(frame, ["chosen:sep", "chosen:noise"])
    row = logit.set_index("term").loc["chosen:sep"]
    X = np.column_stack([np.ones(n), sep, noise])
    f = firth_logit(X, mis.astype(float))
    assert row["estimate"] == pytest.approx(f.beta[1], rel=1e-6) and 1 < row["estimate"] < 8
    assert row["se_type"] == FIRTH_SE_TYPE and 1e-8 < row["p"] < 0.05
    assert any("does not exist" in m and "chosen:sep" in m and "Firth" in m for m in msgs)
    assert logit["p"].notna().all() and np.isfinite(logit["estimate"]).all()


# -- Findings a referee raises first (item 10) ------------------------------------------------------------

def _insert_scores(st, rewards: dict[str, dict[str, float]]) -> None:
    """rewards: {model_id (= its role): {response text: reward}}."""
    texts = st.df("SELECT response, text_id FROM texts")
    tid = dict(zip(texts["response"], texts["text_id"]))
    with st.transaction() as cur:
        for mid, by_text in rewards.items():
            cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, now())",
                        [mid, mid, mid.split("-")[-1]])
            cur.register("_s", pd.DataFrame([(mid, tid[t], r) for t, r in by_text.items()],
                                            columns=["model_id", "text_id", "reward"]))
            cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
            cur.unregister("_s")


def build_length_study(tmp_path):
    """60 pairs in three subsets; the humans always chose the longer response; the post-D RM agrees on 24
    of 60 (0.400), the pre-D RM on 30 (0.500). In subset s0 the post-D RM reverses 16 of 20 pairs the pre-D
    RM got right, in s1 and s2 pre and post differ little."""
    f = tmp_path / "len.jsonl"
    recs, pre, post = [], {}, {}
    for i in range(60):
        sub = f"s{i // 20}"
        a, b = f"A long and careful answer number {i}, with reasons.", f"B short {i}."
        recs.append({"prompt": f"q{i}", "response 1": a, "response 2": b, "label": 0, "category": sub})
        j = i % 20
        if sub == "s0":
            pre_ok, post_ok = j < 18, j < 2
        elif sub == "s1":
            pre_ok, post_ok = j < 6, j < 11
        else:
            pre_ok, post_ok = j < 6, j < 11
        pre[a], pre[b] = (1.0, 0.0) if pre_ok else (0.0, 1.0)
        post[a], post[b] = (1.0, 0.0) if post_ok else (0.0, 1.0)
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    path = tmp_path / "len.duckdb"
    mapping, shape = parse_map(["prompt=prompt,a=response 1,b=response 2,label=label,subset=category"],
                               label="a=0,b=1,tie=2")
    with open_study(path) as st:
        ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        _insert_scores(st, {"rm-pre": pre, "rm-post": post})
    return path


def test_findings_say_when_length_alone_beats_the_rm(tmp_path):
    from analysis.fit.study_fit import fit_study, summary
    from analysis.report.document import findings

    path = build_length_study(tmp_path)
    with open_study(path) as st:
        fit_study(st)
        s = summary(st)
    post = {x["role"]: x for x in s["agreement_stats"] if x["slice"] == "all"}["post"]
    assert post["agreement"] == pytest.approx(24 / 60)
    beats = {(b["role"], b["baseline"]): b for b in s["length_beats_rm"]}
    assert beats[("post", "longer_wins")]["baseline_agreement"] == pytest.approx(1.0)
    assert beats[("post", "longer_wins")]["apart"] is True
    assert ("pre", "longer_wins") in beats and ("post", "shorter_wins") not in beats
    lines = findings(s)
    line = next(ln for ln in lines if "Length alone beats the post-D RM" in ln)
    assert "longer-wins agrees with the humans on 1.000" in line and "post-D RM on 0.400" in line
    text = run_cli("summary", "--study", path)  # the default summary says it in its Findings
    assert "Length alone beats the post-D RM" in text.out.replace("\n", " ")
    text = run_cli("summary", "--study", path, "--all")
    assert "length beats the RM: longer_wins agrees on 1.000 of 60 decided pairs, the post-D RM on 0.400" in text.out


def test_subset_tests_get_benjamini_hochberg_shown_as_such(tmp_path):
    from scipy.stats import binomtest

    from analysis.fit.study_fit import fit_study, summary
    from analysis.report.document import findings

    path = build_length_study(tmp_path)
    with open_study(path) as st:
        fit_study(st)
        s = summary(st)
    sub = {r["value"]: r for r in s["paired_tests"] if r["slice"] == "subset"}
    # by hand: s0 16 reversed, 0 got aligned; s1 and s2: 0 reversed, 5 got aligned
    raw = {"s0": binomtest(16, 16).pvalue, "s1": binomtest(0, 5).pvalue, "s2": binomtest(0, 5).pvalue}
    order = sorted(raw, key=raw.get)  # BH: p_(k) * m / k, then the running minimum from the largest
    m, bh, run = len(raw), {}, 1.0
    for k in range(m, 0, -1):
        run = min(run, raw[order[k - 1]] * m / k)
        bh[order[k - 1]] = run
    for v in raw:
        assert sub[v]["p"] == pytest.approx(raw[v]) and sub[v]["p_bh"] == pytest.approx(bh[v])
    allrow = next(r for r in s["paired_tests"] if r["slice"] == "all")
    assert allrow["p_bh"] == pytest.approx(allrow["p"])
    line = next(ln for ln in findings(s) if "per subset" in ln)
    assert "3 McNemar tests, Benjamini-Hochberg corrected" in line and "1 of 3 subsets" in line
    text = run_cli("summary", "--study", path).out
    assert "p BH" in text and "Benjamini-Hochberg" in text


def test_vote_lines_only_with_several_votes(tmp_path):
    path = build_planted_ties(tmp_path)  # one 0/1/2 label per pair: 10 human ties, no votes to speak of
    assert run_cli("fit", "--study", path).code == 0
    text = run_cli("summary", "--study", path).out
    assert "human ties: 10 pairs" in text and "several votes" not in text and "unanimous" not in text
    js = json.loads(run_cli("summary", "--study", path, "--json").out)
    assert js["human"]["with_votes"] == 0


def test_joint_wald_rows_are_labelled(tmp_path):
    from analysis.fit.study_fit import WALD_LABEL, fit_study, summary
    from analysis.report.document import summary_tables

    path = build_planted_ties(tmp_path)
    with open_study(path) as st:
        texts = st.df("SELECT DISTINCT text_id, response FROM texts")
        rng = np.random.default_rng(1)
        chars = texts["response"].str.len().to_numpy(float)
        vals = []
        for t, c in zip(texts["text_id"], chars):
            vals += [(t, "heuristic", "len_chars", c), (t, "heuristic", "len_words", c / 5 + rng.normal(0, 0.3)),
                     (t, "heuristic", "polite", float(rng.integers(0, 2)))]
        with st.transaction() as cur:
            for name in ("len_chars", "len_words", "polite"):
                cur.execute("INSERT INTO feature_defs (featurizer, name, kind, role) VALUES ('heuristic', ?, ?, "
                            "'spoiler')", [name, "binary" if name == "polite" else "count"])
            cur.register("_f", pd.DataFrame(vals, columns=["text_id", "featurizer", "name", "value"]))
            cur.execute("INSERT INTO features SELECT * FROM _f")
            cur.unregister("_f")
        fit_study(st)
        s = summary(st)
    wald = s["coefficients"]["imprint_joint_wald"]
    assert wald and all(r["term"].startswith(WALD_LABEL) for r in wald)
    assert "len_chars + heuristic.len_words" in wald[0]["term"] or "len_chars + len_words" in wald[0]["term"]
    titles = [t for t, _h, _r in summary_tables(s)]
    assert any("joint Wald F tests (estimate = F statistic, not a coefficient)" in t for t in titles)
    text = run_cli("summary", "--study", path, "--all").out
    assert "Imprint: joint Wald F tests that every coefficient of a group is 0" in text


# -- truncation per score run (item 7) --------------------------------------------------------------------

async def test_truncation_is_stored_per_run_and_shown_everywhere(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    """Real tiny RMs: the pre-D RM scored at 16 tokens cuts most texts, the post-D RM at 256 none. Each run
    records its length and share; the summary, the report and the app's status line say it, with a warning
    over 5 % for the pre-D RM only."""
    from rmtui.app import RmtuiApp

    path = build_planted_ties(tmp_path)
    with open_study(path) as st:  # rescore for real: drop the planted models
        with st.transaction() as cur:
            cur.execute("DELETE FROM scores")
            cur.execute("DELETE FROM models")
    assert run_cli("score", "--study", path, "--model", tiny_rm_dir, "--role", "pre", "--max-length", "16").code == 0
    assert run_cli("score", "--study", path, "--model", tiny_rm_dir_b, "--role", "post", "--max-length", "256").code == 0
    with open_study(path, read_only=True) as st:
        runs = st.df("SELECT r.max_length, r.n_scored, r.n_truncated, r.truncated_share, m.role FROM score_runs r "
                      "JOIN models m USING (model_id) ORDER BY r.started_at")
        per_text = st.df("SELECT m.role, count(*) FILTER (WHERE s.truncated) AS cut, count(*) AS n FROM scores s "
                         "JOIN models m USING (model_id) GROUP BY m.role").set_index("role")
    pre, post = runs.iloc[0], runs.iloc[1]
    assert (pre["role"], pre["max_length"], post["max_length"]) == ("pre", 16, 256)
    assert pre["n_scored"] == per_text.loc["pre", "n"] == 80 and pre["n_truncated"] == per_text.loc["pre", "cut"]
    assert pre["truncated_share"] == pytest.approx(pre["n_truncated"] / 80) and pre["truncated_share"] > 0.05
    assert post["n_truncated"] == 0 and post["truncated_share"] == 0
    cut = int(pre["n_truncated"])
    assert run_cli("fit", "--study", path).code == 0
    js = json.loads(run_cli("summary", "--study", path, "--json").out)
    tr = {r["role"]: r for r in js["truncation"]}
    assert (tr["pre"]["n_truncated"], tr["pre"]["n_scored"], tr["pre"]["max_length"]) == (cut, 80, 16)
    assert tr["post"]["n_truncated"] == 0 and len(js["truncation_warnings"]) == 1
    phrase = f"{cut} of 80 texts ({100 * cut / 80:.1f} %) truncated at 16 tokens"
    text = run_cli("summary", "--study", path).out
    assert phrase in text and "warning" in text and "over 5 %" in text
    assert run_cli("report", "--study", path, "-o", tmp_path / "rep").code == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"- **Truncation**: tiny-rm-0 (pre): {phrase}" in md
    app = RmtuiApp(path, keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(200, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(app.screen.query_one("#status").render())
    assert f"tiny-rm-0 truncated {cut} of 80 texts ({100 * cut / 80:.1f} %) at 16 tokens, over 5 %" in status
