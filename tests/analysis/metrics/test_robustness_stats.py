"""The robustness score's definitions on hand-built cases (issue 17 item 1): pairs at risk, events,
exact tests for small cells, not-estimable terms, multiplicity adjustment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from analysis.metrics import robustness as M


def _changes(margin_before, margin_after, side=None, pair=None):
    n = len(margin_before)
    mb, ma = np.asarray(margin_before, float), np.asarray(margin_after, float)
    return pd.DataFrame({
        "rewrite_id": [f"r{i}" for i in range(n)],
        "pair_id": pair if pair is not None else [f"p{i}" for i in range(n)],
        "side": side if side is not None else ["chosen"] * n,
        "margin_before": mb, "margin_after": ma,
        "became_misaligned": ((mb > 0) & (ma <= 0)).astype(int),
        "became_aligned": ((mb <= 0) & (ma > 0)).astype(int),
    })


def test_zero_of_nine_flip_is_not_significant_and_exact():
    # 100 rewrites of aligned pairs; the flip is present in 9 of them, with 0 events; 5 events among
    # the 91 others. Hand: with 5 events among 100, P(none of them among the 9 flips) =
    # C(91,5)/C(100,5) = 0.6177, the likeliest table, so Fisher's two-sided p = 1.
    n = 100
    flip = np.zeros(n, int)
    flip[:9] = 1
    after = np.ones(n)
    after[9:14] = -1.0                    # 5 events, all without the flip
    ch = _changes(np.ones(n), after)
    ind = pd.DataFrame({"chosen_x_down": flip}, index=ch["rewrite_id"])
    t, _ = M.robustness_score(ch, ind, variants=("at_risk",), outcomes=("became_misaligned",))
    row = t.set_index("term").loc["chosen_x_down"]
    from math import comb

    assert comb(91, 5) / comb(100, 5) == pytest.approx(0.6177, abs=1e-4)
    assert fisher_exact([[0, 9], [5, 86]]).pvalue == pytest.approx(1.0)
    assert row["p"] == pytest.approx(1.0) and row["p_exact"] == pytest.approx(1.0)
    assert row["p_method"].startswith("Fisher") and row["status"].startswith("small cells")
    assert row["estimate"] == pytest.approx(0 - 5 / 91)
    assert row["ci_low"] < 0 < row["ci_high"]
    assert (row["n"], row["events"], row["n_flip"], row["events_flip"]) == (100, 5, 9, 0)
    # the old HC1 LPM calls this term significant (the artefact the issue names)
    old = M.lpm(ch["became_misaligned"], ind.reset_index(drop=True), outcome="became_misaligned")
    assert old.table.set_index("term").loc["chosen_x_down", "p"] < 0.05


def test_planted_effect_is_significant_after_correction():
    rng = np.random.default_rng(3)
    n = 600
    flip = (rng.random(n) < 0.5).astype(int)
    noise = (rng.random(n) < 0.5).astype(int)           # a flip with no effect
    p = np.where(flip == 1, 0.40, 0.08)
    event = rng.random(n) < p
    ch = _changes(np.ones(n), np.where(event, -1.0, 1.0), pair=[f"p{i // 2}" for i in range(n)])
    ind = pd.DataFrame({"chosen_a_down": flip, "chosen_b_down": noise}, index=ch["rewrite_id"])
    t, _ = M.robustness_score(ch, ind, variants=("at_risk",), outcomes=("became_misaligned",))
    t = t.set_index("term")
    a = t.loc["chosen_a_down"]
    assert a["status"] == "ok" and a["se_type"] == "cluster(pair)"
    assert a["ci_low"] < 0.32 < a["ci_high"] and a["p_bonferroni"] < 1e-6 and a["p_bh"] < 1e-6
    # the adjusted p-values are the textbook ones over the two flip terms
    ps = t.loc[["chosen_a_down", "chosen_b_down"], "p"].to_numpy()
    assert t.loc["chosen_b_down", "p_bonferroni"] == pytest.approx(min(1.0, 2 * ps[1]))
    assert np.isnan(t.loc["intercept", "p_bonferroni"])


def test_pairs_at_risk_ties_and_not_estimable():
    # 6 aligned before (2 become misaligned, 1 ties after), 4 misaligned before (1 becomes aligned),
    # 1 tied before.
    before = [1, 1, 1, 1, 1, 1, -1, -1, -1, -1, 0]
    after = [-1, -2, 0, 1, 1, 1, 1, -1, -1, -1, 1]
    ch = _changes(before, after)
    rows, y, counts = M.at_risk_rows(ch, "became_misaligned")
    assert len(rows) == 5 and int(y.sum()) == 2
    assert counts == {"n_all": 11, "not_at_risk": 4, "tie_before": 1, "tie_after": 1}
    rows, y, counts = M.at_risk_rows(ch, "became_aligned")
    assert len(rows) == 4 and int(y.sum()) == 1
    # the paper's variant models every rewrite, ties as not aligned: 3 events of 11
    rows, y, _ = M.at_risk_rows(ch, "became_misaligned", variant="all_rewrites")
    assert len(rows) == 11 and int(y.sum()) == 3
    # with a tie tolerance of 1.5 only margin 2 counts as decided: -2 is the only event at risk... none at risk
    rows, y, counts = M.at_risk_rows(ch, "became_misaligned", tie_tol=1.5)
    assert len(rows) == 0 and counts["tie_before"] == 11
    # too few events: every term not estimable, nothing adjusted
    ind = pd.DataFrame({"chosen_x_down": [1, 0] * 5 + [1]}, index=ch["rewrite_id"])
    t, _ = M.robustness_score(ch, ind, outcomes=("became_misaligned",))
    assert t["estimate"].isna().all() and t["status"].str.startswith("not estimable").all()
    assert t["p_bh"].isna().all()


def test_flip_without_variation_and_zero_se_are_not_estimable():
    n = 40
    after = np.where(np.arange(n) < 10, -1.0, 1.0)
    ch = _changes(np.ones(n), after)
    const = np.ones(n, int)                     # every rewrite flips: no variation
    same_as_y = (after < 0).astype(int)         # perfectly predicts the outcome: residuals 0, SE 0
    ind = pd.DataFrame({"chosen_all_down": const, "chosen_y_down": same_as_y}, index=ch["rewrite_id"])
    t, _ = M.robustness_score(ch, ind, variants=("at_risk",), outcomes=("became_misaligned",))
    t = t.set_index("term")
    assert t.loc["chosen_all_down", "status"].startswith("not estimable: the flip does not vary")
    assert t.loc["chosen_y_down", "status"].startswith("not estimable: standard error")
    assert np.isnan(t.loc["chosen_y_down", "estimate"])


def test_small_cell_estimate_is_the_difference_in_rates():
    # 2 events among 10 flips, 8 among 90 without: estimate 0.2 - 0.0889, inside its Newcombe interval
    n = 100
    flip = np.zeros(n, int)
    flip[:10] = 1
    after = np.ones(n)
    after[[0, 1]] = -1.0
    after[10:18] = -1.0
    ch = _changes(np.ones(n), after)
    t, _ = M.robustness_score(ch, pd.DataFrame({"chosen_x_down": flip}, index=ch["rewrite_id"]),
                              variants=("at_risk",), outcomes=("became_misaligned",))
    row = t.set_index("term").loc["chosen_x_down"]
    assert row["estimate"] == pytest.approx(0.2 - 8 / 90)
    assert row["ci_low"] < row["estimate"] < row["ci_high"] and np.isnan(row["se"])
    assert row["p"] == pytest.approx(fisher_exact([[2, 8], [8, 82]]).pvalue)
