"""Stored agreement / regime / paired-test / baseline tables on hand-computed cases (issue 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from analysis.metrics.agreement import mcnemar_exact
from analysis.metrics.tables import agreement_stats, baselines, paired_tests, regime_stats


def test_mcnemar_hand_computed_132_vs_283():
    # 1000 pairs decided by both: 132 reversed (1,0), 283 got aligned (0,1), 400 stayed, 185 resist
    pre = [1] * 132 + [0] * 283 + [1] * 400 + [0] * 185
    post = [0] * 132 + [1] * 283 + [1] * 400 + [0] * 185
    r = mcnemar_exact(pre + [pd.NA], post + [1])      # a pair tied pre: left out
    assert (r["n_both_decided"], r["reversed"], r["got_aligned"]) == (1000, 132, 283)
    # exact: 2 * P(X <= 132), X ~ Bin(415, 1/2)
    from math import comb

    p_hand = 2 * sum(comb(415, k) for k in range(133)) / 2 ** 415
    assert r["p"] == pytest.approx(p_hand, rel=1e-9) and r["p"] < 1e-12
    assert r["p"] == pytest.approx(binomtest(132, 415).pvalue)
    from statsmodels.stats.contingency_tables import mcnemar

    assert r["p"] == pytest.approx(mcnemar([[400, 132], [283, 185]], exact=True).pvalue)
    assert r["agreement_pre"] == pytest.approx(0.532) and r["agreement_post"] == pytest.approx(0.683)
    assert r["difference"] == pytest.approx(0.151)
    se = np.sqrt(415 - 151 ** 2 / 1000) / 1000
    assert (r["diff_low"], r["diff_high"]) == pytest.approx((0.151 - 1.959964 * se, 0.151 + 1.959964 * se))


def _pm():
    # subset a: 3 stayed, 1 reversed, 1 tie (post); subset b: 2 got aligned, 1 resists
    return pd.DataFrame({
        "pair_id": list("pqrstuvw"),
        "subset": list("aaaaabbb"), "split": "test", "heldout": [True] * 5 + [None] * 3,
        "agree_pre": pd.array([1, 1, 1, 1, 1, 0, 0, 0], dtype="Int64"),
        "agree_post": pd.array([1, 1, 1, 0, pd.NA, 1, 1, 0], dtype="Int64"),
        "regime": ["stayed_aligned"] * 3 + ["reversed", "tie"] + ["got_aligned"] * 2 + ["resists_alignment"],
        "gamma": list("cccirrri"),
    })


def test_regime_and_paired_tables_by_slice():
    pm = _pm()
    rs = regime_stats(pm).set_index(["slice", "value", "regime"])
    assert rs.loc[("all", "all", "stayed_aligned"), "n"] == 3 and rs.loc[("all", "all", "stayed_aligned"), "decided"] == 7
    assert rs.loc[("subset", "b", "got_aligned"), "share"] == pytest.approx(2 / 3)
    assert rs.loc[("heldout", "unknown", "resists_alignment"), "n"] == 1
    pt = paired_tests(pm).set_index(["slice", "value"])
    a = pt.loc[("subset", "a")]
    assert (a["n_both_decided"], a["reversed"], a["got_aligned"]) == (4, 1, 0) and a["p"] == pytest.approx(1.0)
    b = pt.loc[("all", "all")]
    assert (b["reversed"], b["got_aligned"]) == (1, 2) and b["p"] == pytest.approx(1.0)
    assert pt.loc[("gamma", "r"), "got_aligned"] == 2


def test_agreement_stats_planted_ties_and_complements():
    # one RM, 6 pairs: 3 agree, 1 disagree, 2 ties (one exact, one identical texts)
    long = pd.DataFrame({"model_id": "m", "role": "post", "reward_chosen": [2, 2, 2, 0, 1, 5.0],
                         "reward_rejected": [1, 1, 1, 1, 1, 0.0],
                         "identical": [False] * 5 + [True], "subset": list("aabbbb")})
    t = agreement_stats(long).set_index(["slice", "value"])
    r = t.loc[("all", "all")]
    assert (r["decided"], r["agree"], r["disagree"], r["tie"]) == (4, 3, 1, 2)
    assert r["agreement"] == pytest.approx(0.75) and r["misalignment"] == pytest.approx(0.25)
    assert r["agreement_low"] == pytest.approx(1 - r["misalignment_high"])
    assert t.loc[("subset", "b"), "agreement"] == pytest.approx(1 / 2) and t.loc[("subset", "b"), "tie"] == 2


def test_baselines_longer_shorter_and_logit():
    rng = np.random.default_rng(0)
    n = 200
    # the chosen side is longer in 150 of 200 pairs, shorter in 40, equal in 10
    lc = np.r_[rng.integers(50, 100, 150), rng.integers(5, 20, 40), np.full(10, 30)]
    lr = np.r_[rng.integers(5, 40, 150), rng.integers(30, 60, 40), np.full(10, 30)]
    pf = pd.DataFrame({"chosen_response": ["x" * int(k) for k in lc], "rejected_response": ["y" * int(k) for k in lr],
                       "identical": False, "subset": "s"})
    b = baselines(pf).set_index(["baseline", "slice", "value"])
    lw = b.loc[("longer_wins", "all", "all")]
    assert (lw["decided"], lw["agree"], lw["tie"]) == (190, 150, 10) and lw["agreement"] == pytest.approx(150 / 190)
    sw = b.loc[("shorter_wins", "all", "all")]
    assert sw["agreement"] == pytest.approx(40 / 190)
    # the logit learns 'longer wins' from the data (cross-validated) and gets about what that rule gets
    lg = b.loc[("length_logit", "all", "all")]
    assert lg["agreement"] == pytest.approx(150 / 190, abs=0.03) and "cross-validated" in lg["method"]
