"""The metrics on synthetic data with planted effects and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.metrics import (
    add_outcomes, agreement, compare, confusing, gamma, imprint, misalignment, misalignment_drivers, ols,
    regime, regimes, reward_shift_theta, significance_marker, theta_summary,
)
from analysis.metrics.linreg import check_design, regress, vif


# -- synthetic imprint data ---------------------------------------------------------------------------
def planted_rows(n_pairs=1500, seed=0, pair_sd=1.0, noise=1.0):
    """Rows per (pair, side) with reward = 1 + 2*x_bin + 0.5*x_cont - 0.3*x_count + pair effect + noise."""
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    pair = np.repeat(np.arange(n_pairs), 2)
    side = np.tile(["chosen", "rejected"], n_pairs)
    x_bin = rng.integers(0, 2, n).astype(float)
    x_cont = rng.normal(3, 2, n)
    x_count = rng.poisson(4, n).astype(float)
    u = rng.normal(0, pair_sd, n_pairs)[pair]
    pre = 1 + 2 * x_bin + 0.5 * x_cont - 0.3 * x_count + u + rng.normal(0, noise, n)
    post = pre + 1.5 * x_bin + rng.normal(0, noise, n)       # shift: +1.5 on x_bin only
    return pd.DataFrame({"pair_id": [f"p{i}" for i in pair], "side": side, "pre": pre, "post": post,
                         "shift": post - pre, "x_bin": x_bin, "x_cont": x_cont, "x_count": x_count})


TRUE = {"pre": {"x_bin": 2.0, "x_cont": 0.5, "x_count": -0.3},
        "post": {"x_bin": 3.5, "x_cont": 0.5, "x_count": -0.3},
        "shift": {"x_bin": 1.5, "x_cont": 0.0, "x_count": 0.0}}


def test_imprint_recovers_planted_coefficients():
    rows = planted_rows()
    res = imprint(rows, ["x_bin", "x_cont", "x_count"], ("pre", "post", "shift"))
    t = res.table.set_index(["target", "feature"])
    assert len(t) == 9
    for target, coefs in TRUE.items():
        for f, b in coefs.items():
            r = t.loc[(target, f)]
            assert r.ci_low <= b <= r.ci_high, (target, f, r.estimate, r.ci_low, r.ci_high)
            assert abs(r.estimate - b) < 0.15, (target, f, r.estimate)
    assert (t["n"] == 3000).all() and (t["se_type"] == "cluster").all()
    assert t.loc[("pre", "x_bin"), "p"] < 1e-10 and t.loc[("shift", "x_cont"), "p"] > 0.001
    # adjusted p-values: Bonferroni = min(1, 3p), BH <= Bonferroni
    pre = res.table[res.table.target == "pre"]
    assert np.allclose(pre.p_bonferroni, np.minimum(1, 3 * pre.p))
    assert (pre.p_bh <= pre.p_bonferroni + 1e-15).all()
    assert 0.5 < t.loc[("pre", "x_bin"), "r2"] < 1
    assert any("cluster-robust by pair" in m for m in res.messages)


def test_clustered_se_equals_hand_sandwich_and_statsmodels():
    rows = planted_rows(n_pairs=25, seed=3, pair_sd=2.0)
    res = imprint(rows, ["x_bin", "x_cont"], ("pre",))
    # by hand: (X'X)^-1 [sum_g (X_g'e_g)(X_g'e_g)'] (X'X)^-1 * G/(G-1) * (N-1)/(N-K)
    X = np.column_stack([np.ones(len(rows)), rows["x_bin"], rows["x_cont"]])
    y = rows["pre"].to_numpy()
    beta = np.linalg.inv(X.T @ X) @ X.T @ y
    e = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = np.zeros((3, 3))
    for g in rows["pair_id"].unique():
        m = (rows["pair_id"] == g).to_numpy()
        s = X[m].T @ e[m]
        meat += np.outer(s, s)
    N, K, G = len(y), 3, rows["pair_id"].nunique()
    cov = bread @ meat @ bread * (G / (G - 1)) * ((N - 1) / (N - K))
    se_hand = np.sqrt(np.diag(cov))[1:]
    got = res.table.set_index("feature").loc[["x_bin", "x_cont"]]
    assert np.allclose(got["estimate"], beta[1:], rtol=1e-10)
    assert np.allclose(got["se"], se_hand, rtol=1e-10)
    smr = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(rows["pair_id"])[0]}, use_t=True)
    assert np.allclose(got["se"], smr.bse[1:], rtol=1e-8)
    assert np.allclose(got["p"], smr.pvalues[1:], rtol=1e-6)
    assert np.allclose(got["ci_low"], smr.conf_int()[1:, 0], rtol=1e-8)
    assert np.isclose(res.intercepts["estimate"].iloc[0], beta[0]) and np.isclose(res.intercepts["se"].iloc[0], smr.bse[0])
    # the clustered SE differs from iid here (a strong pair effect)
    iid = imprint(rows, ["x_bin", "x_cont"], ("pre",), se="iid").table.set_index("feature")
    smi = sm.OLS(y, X).fit()
    assert np.allclose(iid.loc[["x_bin", "x_cont"], "se"], smi.bse[1:], rtol=1e-8)
    assert np.allclose(iid.loc[["x_bin", "x_cont"], "p"], smi.pvalues[1:], rtol=1e-6)
    assert (iid["se_type"] == "iid").all()
    assert np.allclose(iid.loc["x_bin", "r2"], smi.rsquared)


def test_hc1_matches_statsmodels():
    rng = np.random.default_rng(5)
    X = sm.add_constant(rng.normal(size=(80, 2)))
    y = X @ [1, 2, -1] + rng.normal(size=80) * (1 + np.abs(X[:, 1]))
    f = ols(X, y, ["c", "a", "b"], se="hc1")
    r = sm.OLS(y, X).fit(cov_type="HC1", use_t=True)
    assert np.allclose(f.se[:, 0], r.bse, rtol=1e-10)
    tab = f.table(["y"])
    assert np.allclose(tab["p"], r.pvalues, rtol=1e-8)


def test_pair_fe_equals_pair_dummies_and_removes_pair_confound():
    rows = planted_rows(n_pairs=40, seed=7, pair_sd=3.0)
    # confound: x_cont correlated with the pair effect across pairs -> pooled biased, FE unbiased-ish
    res = imprint(rows, ["x_bin", "x_cont"], ("pre",), pair_fe=True)
    D = pd.get_dummies(rows["pair_id"], dtype=float).to_numpy()
    X = np.column_stack([rows[["x_bin", "x_cont"]].to_numpy(), D])
    b = np.linalg.lstsq(X, rows["pre"].to_numpy(), rcond=None)[0]
    got = res.table.set_index("feature")
    assert np.allclose(got.loc[["x_bin", "x_cont"], "estimate"], b[:2], rtol=1e-8)
    assert got["n"].iloc[0] == 40          # one difference per pair
    assert any("chosen-minus-rejected differences, no intercept" in m for m in res.messages)
    assert res.intercepts.empty


def test_pair_fe_sees_through_pair_level_confounding():
    rng = np.random.default_rng(11)
    n_pairs = 3000
    pair = np.repeat(np.arange(n_pairs), 2)
    u = rng.normal(0, 2, n_pairs)
    x = (u[pair] + rng.normal(0, 1, 2 * n_pairs))      # feature correlated with the pair effect
    y = 0.7 * x + 3 * u[pair] + rng.normal(0, 0.5, 2 * n_pairs)
    rows = pd.DataFrame({"pair_id": pair, "side": np.tile(["chosen", "rejected"], n_pairs), "pre": y, "x": x})
    pooled = imprint(rows, ["x"], ("pre",)).table.iloc[0]
    fe = imprint(rows, ["x"], ("pre",), pair_fe=True).table.iloc[0]
    assert not (pooled.ci_low <= 0.7 <= pooled.ci_high)   # pooled OLS is confounded
    assert fe.ci_low <= 0.7 <= fe.ci_high and abs(fe.estimate - 0.7) < 0.05


def test_collinear_and_constant_features_dropped_with_message():
    rows = planted_rows(n_pairs=200, seed=1)
    rows["x_sum"] = rows["x_bin"] + rows["x_cont"]
    rows["x_const"] = 4.0
    res = imprint(rows, ["x_bin", "x_cont", "x_sum", "x_const", "x_count"], ("pre",))
    assert res.dropped == ["x_sum", "x_const"]
    assert set(res.table.feature) == {"x_bin", "x_cont", "x_count"}
    text = " | ".join(res.messages)
    assert "dropped feature x_sum: collinear with" in text and "x_bin" in text
    assert "dropped feature x_const: constant" in text
    # the survivors equal the fit without the dropped columns
    ref = imprint(rows, ["x_bin", "x_cont", "x_count"], ("pre",)).table
    assert np.allclose(res.table.estimate, ref.estimate)


def test_all_features_collinear_never_crashes():
    rows = planted_rows(n_pairs=20, seed=2)
    rows["z"] = 1.0
    res = imprint(rows, ["z"], ("pre",))
    assert res.table.empty and any("no features left" in m for m in res.messages)


def test_vif_warning_and_values():
    rng = np.random.default_rng(4)
    rows = planted_rows(n_pairs=300, seed=4)
    rows["x_twin"] = rows["x_cont"] + rng.normal(0, 0.1, len(rows))
    res = imprint(rows, ["x_bin", "x_cont", "x_twin"], ("pre",))
    v = res.table.set_index("feature")["vif"]
    assert v["x_cont"] > 10 and v["x_twin"] > 10 and v["x_bin"] < 1.2
    assert any("VIF of x_cont" in m for m in res.messages)
    # statsmodels' VIF (regression on the others with a constant) agrees
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    X = sm.add_constant(rows[["x_bin", "x_cont", "x_twin"]].to_numpy())
    assert np.isclose(v["x_cont"], variance_inflation_factor(X, 2), rtol=1e-8)


def test_standardize_scales_continuous_only():
    rows = planted_rows(n_pairs=500, seed=6)
    raw = imprint(rows, ["x_bin", "x_cont"], ("pre",)).table.set_index("feature")
    z = imprint(rows, ["x_bin", "x_cont"], ("pre",), standardize=True,
                kinds={"x_bin": "binary", "x_cont": "continuous"})
    zt = z.table.set_index("feature")
    assert np.isclose(zt.loc["x_bin", "estimate"], raw.loc["x_bin", "estimate"])
    assert np.isclose(zt.loc["x_cont", "estimate"], raw.loc["x_cont", "estimate"] * rows["x_cont"].std())
    assert z.standardized == ["x_cont"] and "per standard deviation" in z.units


def test_missing_rows_left_out_and_counted():
    rows = planted_rows(n_pairs=100, seed=8)
    rows.loc[:9, "x_cont"] = np.nan
    res = imprint(rows, ["x_bin", "x_cont"], ("pre",))
    assert res.n == 190 and any("10 of 200 rows left out" in m for m in res.messages)


def test_check_design_order_and_messages():
    X = np.array([[1, 2, 3], [2, 4, 6.0], [0, 1, 1], [5, 1, 6]])
    keep, kept, msgs = check_design(X, ["a", "b", "c"], intercept=False)
    assert kept == ["a", "b"] and "collinear" in msgs[0]


# -- agreement, ties, regimes ---------------------------------------------------------------------------
def test_compare_ties_tolerance_identical_unscored():
    a, t = compare([2.0, 1.0, 1.0, 1.0, np.nan, 3.0], [1.0, 2.0, 1.0, 1.05, 1.0, 3.0 - 1e-12],
                   identical=[False, False, False, False, False, False])
    assert list(a.astype(object).where(a.notna(), None)) == [1, 0, None, 0, None, 1]
    assert list(t.astype(object).where(t.notna(), None)) == [False, False, True, False, None, False]
    a, t = compare([2.0, 1.0, 1.0], [1.0, 1.05, 1.0], tol=0.1, identical=[True, False, False])
    assert a.isna().all() and t.tolist() == [True, True, True]   # identical texts are ties


def _pm(pre_c, pre_r, post_c, post_r, identical=None):
    df = pd.DataFrame({"reward_chosen_pre": pre_c, "reward_rejected_pre": pre_r,
                       "reward_chosen_post": post_c, "reward_rejected_post": post_r})
    if identical is not None:
        df["identical"] = identical
    pm = add_outcomes(df)
    pm["regime"] = regime(pm.agree_pre, pm.agree_post, pm.tie_pre, pm.tie_post).to_numpy()
    return pm


def test_regimes_known_counts():
    # 5 stayed, 3 got, 2 resists, 1 reversed, 2 tie (one pre tie, one identical), 1 unscored
    pre_c = [1] * 5 + [0] * 3 + [0] * 2 + [1] + [1, 2] + [np.nan]
    pre_r = [0] * 5 + [1] * 3 + [1] * 2 + [0] + [1, 1] + [0]
    post_c = [2] * 5 + [2] * 3 + [0] * 2 + [0] + [3, 2] + [1]
    post_r = [1] * 5 + [1] * 3 + [1] * 2 + [1] + [0, 1] + [0]
    ident = [False] * 12 + [True] + [False]
    pm = _pm(pre_c, pre_r, post_c, post_r, ident)
    assert pm["regime"].tolist() == (["stayed_aligned"] * 5 + ["got_aligned"] * 3 + ["resists_alignment"] * 2
                                     + ["reversed"] + ["tie", "tie"] + ["unscored"])
    tab = regimes(pm).set_index("regime")
    assert tab.loc["stayed_aligned", "n"] == 5 and tab.loc["tie", "n"] == 2 and tab.loc["unscored", "n"] == 1
    assert np.isclose(tab.loc["stayed_aligned", "share_decided"], 5 / 11)
    assert np.isclose(tab.loc["stayed_aligned", "share"], 5 / 14)
    ag = agreement(pm).set_index("role")
    assert ag.loc["pre", "agree"] == 6 and ag.loc["pre", "disagree"] == 5 and ag.loc["pre", "tie"] == 2
    # one convention: agreement = agree / decided, misalignment its complement, ties beside them
    assert ag.loc["pre", "unscored"] == 1 and np.isclose(ag.loc["pre", "agreement"], 6 / 11)
    assert np.isclose(ag.loc["pre", "misalignment"], 5 / 11) and ag.loc["pre", "decided"] == 11
    assert np.isclose(ag.loc["pre", "agreement_ties_as_disagree"], 6 / 13)
    # Wilson by hand: 6 of 11, z = 1.96
    z, p_hat, nn = 1.959964, 6 / 11, 11
    centre = (p_hat + z * z / (2 * nn)) / (1 + z * z / nn)
    half = z * np.sqrt(p_hat * (1 - p_hat) / nn + z * z / (4 * nn * nn)) / (1 + z * z / nn)
    assert np.isclose(ag.loc["pre", "agreement_low"], centre - half, atol=1e-6)
    assert np.isclose(ag.loc["pre", "misalignment_high"], 1 - (centre - half), atol=1e-6)
    assert np.isclose(ag.loc["pre", "agreement_decided"], 6 / 11)
    assert ag.loc["post", "agree"] == 10 and ag.loc["post", "tie"] == 1 and ag.loc["post", "disagree"] == 3
    mis = misalignment(pm).iloc[0]
    assert mis.decided == 13 and mis.misaligned == 3 and mis.tie == 1 and mis.unscored == 0
    # post: agreement 10/13 and misalignment 3/13 are complements over the same decided pairs
    assert np.isclose(mis.misalignment, 1 - ag.loc["post", "agreement"])


def test_agreement_by_group():
    pm = _pm([1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0])
    pm["subset"] = ["a", "a", "b", "b"]
    tab = agreement(pm, by="subset")
    pre = tab[tab.role == "pre"].set_index("subset")
    assert pre.loc["a", "agree"] == 1 and pre.loc["a", "disagree"] == 1 and pre.loc["b", "tie"] == 1


def test_gamma_by_hand():
    # s = 2*harmless + helpful
    ch = pd.DataFrame({"harmless": [1, 1, 0, 0, 1, np.nan], "helpful": [0, 1, 1, 0, 0, 1]})
    rj = pd.DataFrame({"harmless": [0, 1, 1, 0, 0, 1], "helpful": [1, 1, 0, 1, 1, 1]})
    # s_c = 2,3,1,0,2,NaN ; s_r = 1,3,2,1,1,3
    g = gamma(ch, rj, ["harmless", "helpful"])
    assert g.tolist() == ["c", "i", "r", "r", "c", None]
    # the other order puts helpfulness first
    g2 = gamma(ch, rj, ["helpful", "harmless"])
    # s_c = 1,3,2,0,1 ; s_r = 2,3,1,2,2
    assert g2.tolist()[:5] == ["r", "i", "c", "r", "r"]


# -- theta ------------------------------------------------------------------------------------------
def test_theta_exact_angles():
    u = [(1, 0)] * 5 + [(0, 0), (1, 1), (3, 4), (np.nan, 1)]
    v = [(0, 1), (0, -1), (2, 0), (-1, 0), (-1, -1e-300), (1, 1), (0, 0), (3, 4), (1, 1)]
    th = reward_shift_theta([a[0] for a in u], [a[1] for a in u], [b[0] for b in v], [b[1] for b in v])
    assert th[0] == 90.0 and th[1] == -90.0 and th[2] == 0.0 and th[3] == 180.0
    assert abs(th[4]) == 180.0 or np.isclose(abs(th[4]), 180.0)
    assert np.isnan(th[5]) and np.isnan(th[6]) and th[7] == 0.0 and np.isnan(th[8])
    # a tiny angle is exact, where arccos of the clipped cosine loses it
    th2 = reward_shift_theta([1e8], [1e8], [1e8], [1e8 + 1])
    assert th2[0] > 0 and np.isclose(th2[0], np.degrees(0.5e-8), rtol=1e-6)


def test_theta_summary_sign_test():
    df = pd.DataFrame({"theta": [10, 20, 30, -5, np.nan, 0.0], "regime": ["a", "a", "a", "a", "a", "b"]})
    s = theta_summary(df, by="regime").set_index("regime")
    assert s.loc["a", "n"] == 5 and s.loc["a", "n_nan"] == 1 and s.loc["a", "n_pos"] == 3
    assert np.isclose(s.loc["a", "mean"], 13.75) and np.isclose(s.loc["a", "median"], 15)
    assert np.isclose(s.loc["a", "sign_test_p"], 0.625)   # binomtest(3, 4)
    assert s.loc["b", "sign_test_p"] is None or np.isnan(s.loc["b", "sign_test_p"])


# -- drivers ------------------------------------------------------------------------------------------
def test_drivers_lpm_recovers_planted_probability_effect():
    rng = np.random.default_rng(9)
    n = 6000
    xc = rng.integers(0, 2, n).astype(float)
    xr = rng.integers(0, 2, n).astype(float)
    p = 0.2 + 0.3 * xc - 0.1 * xr
    mis = rng.random(n) < p
    agree = pd.array(np.where(mis, 0, 1), dtype="Int64")
    agree[:50] = pd.NA                                     # ties left out
    df = pd.DataFrame({"agree_post": agree, "chosen:x": xc, "rejected:x": xr})
    lpm, logit, msgs = misalignment_drivers(df, ["chosen:x", "rejected:x"])
    t = lpm.set_index("term")
    assert t.loc["chosen:x", "ci_low"] <= 0.3 <= t.loc["chosen:x", "ci_high"]
    assert t.loc["rejected:x", "ci_low"] <= -0.1 <= t.loc["rejected:x", "ci_high"]
    assert (lpm.se_type == "hc1").all() and (lpm.n == n - 50).all()
    assert any("50 tied or unscored" in m for m in msgs)
    lt = logit.set_index("term")
    assert lt.loc["chosen:x", "estimate"] > 1 and lt.loc["chosen:x", "p"] < 1e-10
    # HC1 SEs equal statsmodels'
    X = sm.add_constant(np.column_stack([xc, xr])[50:])
    r = sm.OLS(mis[50:].astype(float), X).fit(cov_type="HC1")
    assert np.allclose(t.loc[["const", "chosen:x", "rejected:x"], "se"], r.bse, rtol=1e-8)
    # the logit's SEs are robust too (HC1 sandwich, labelled), equal to statsmodels' and not the MLE ones
    rl = sm.Logit(mis[50:].astype(float), X).fit(disp=0, cov_type="HC1")
    assert (logit.se_type == "HC1").all()
    assert np.allclose(lt.loc[["const", "chosen:x", "rejected:x"], "se"], rl.bse, rtol=1e-6)


def test_drivers_perfect_separation_reported_not_raised():
    x = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1.0] * 3)
    agree = pd.array((1 - x).astype(int), dtype="Int64")
    df = pd.DataFrame({"agree_post": agree, "chosen:x": x, "rejected:x": np.arange(30) % 3})
    lpm, logit, msgs = misalignment_drivers(df, ["chosen:x", "rejected:x"])
    assert len(lpm)  # the LPM fits (exactly)
    assert any("separation" in m or "not fitted" in m or "converge" in m for m in msgs), msgs


# -- confusing -------------------------------------------------------------------------------------------
def test_confusing_flags():
    df = pd.DataFrame({
        "chosen_response": ["Sure, here it is.", "w " * 30, "No.", "x", "same"],
        "rejected_response": ["I can't help.", "w " * 30 + "extra", "Yes, gladly.", "y", "same"],
        "identical": [False, False, False, False, True],
        "gamma": ["r", "c", "r", None, "i"],
        "agree_post": pd.array([0, 1, 1, 0, pd.NA], dtype="Int64"),
        "same_target_labels": pd.array([False, False, True, pd.NA, True], dtype="boolean"),
    })
    f = confusing(df)
    assert f.near_identical.tolist() == [False, True, False, False, True]
    assert f.labeler_sides_with_rm.astype(object).where(f.labeler_sides_with_rm.notna(), None).tolist() == \
        [True, False, False, None, None]
    assert f.confusing.tolist() == [True, True, True, False, True]


def test_response_similarity_words():
    from analysis.metrics import response_similarity

    a = " ".join(f"w{i}" for i in range(30))
    assert response_similarity(a, a + " extra") == pytest.approx(60 / 61)      # 2*30 / (30 + 31)
    assert response_similarity(a, a + " x y z") == pytest.approx(60 / 63)
    assert response_similarity(a, " ".join(reversed(a.split())), 0.95) < 0.95  # same bag, other order
    assert response_similarity("", "") == 1.0 and np.isnan(response_similarity(None, "a"))


def test_significance_marker():
    assert [significance_marker(p) for p in (0.0005, 0.005, 0.02, 0.2, None, float("nan"))] == \
        ["***", "**", "*", "", "", ""]


def test_regress_too_few_rows_reports():
    df = pd.DataFrame({"y": [1.0, 2.0], "a": [1.0, 3.0]})
    tab, msgs = regress(df, "y", ["a"])
    assert tab.empty and any("not fitted" in m for m in msgs)


def test_vif_single_column():
    assert vif(np.ones((5, 1))).tolist() == [1.0]


def test_shared_text_gives_one_row_per_pair_side():
    from analysis.fit.study_fit import imprint_rows

    pm = pd.DataFrame({"pair_id": ["a", "b"], "chosen_text_id": ["t1", "t1"], "rejected_text_id": ["t2", "t3"],
                       "reward_chosen_pre": [1.0, 1.0], "reward_rejected_pre": [0.0, 2.0],
                       "reward_chosen_post": [2.0, 2.0], "reward_rejected_post": [1.0, 1.0]})
    wide = pd.DataFrame({"f": [1.0, 0.0, 5.0]}, index=pd.Index(["t1", "t2", "t3"], name="text_id"))
    rows = imprint_rows(pm, wide, ["f"])
    assert len(rows) == 4 and (rows.text_id == "t1").sum() == 2
    assert rows.groupby("pair_id").size().tolist() == [2, 2]
    assert rows.set_index(["pair_id", "side"]).loc[("b", "rejected"), "f"] == 5.0
    assert rows.set_index(["pair_id", "side"]).loc[("b", "chosen"), "shift"] == 1.0


def test_large_mean_column_not_mistaken_for_constant():
    rng = np.random.default_rng(12)
    rows = planted_rows(n_pairs=300, seed=12)
    rows["stamp"] = 1e7 + rng.normal(0, 1, len(rows))       # mean 1e7, sd 1
    rows["pre"] = rows["pre"] + 0.5 * (rows["stamp"] - 1e7)
    res = imprint(rows, ["x_bin", "stamp"], ("pre",))
    t = res.table.set_index("feature")
    assert "stamp" in t.index and t.loc["stamp", "ci_low"] <= 0.5 <= t.loc["stamp", "ci_high"]


def test_theta_leaves_ties_out_and_centred_variant():
    from analysis.metrics.shift import centered_theta, theta_regression

    # 4 untied pairs with theta 10, 20, 30, 40 and 2 tied pairs with theta 180 (tie pre) and 0 (tie post)
    df = pd.DataFrame({"theta": [10.0, 20, 30, 40, 180, 0], "tie_pre": [False] * 4 + [True, False],
                       "tie_post": [False] * 5 + [True], "x": [1.0, 2, 3, 4, 5, 6]})
    s = theta_summary(df).iloc[0]
    assert s["n"] == 4 and s["n_tie"] == 2 and s["mean"] == pytest.approx(25.0)   # not (100 + 180) / 6
    tab, msgs = theta_regression(df, ["x"])
    assert tab["n"].iloc[0] == 4 and "2 tied pairs left out" in msgs[0]
    # theta = 10 * x on the untied rows: slope 10 exactly
    assert tab.set_index("term").loc["x", "estimate"] == pytest.approx(10.0)
    # centred: subtracting each RM's mean. pre rewards (1, 0), (3, 2): mean 1.5 -> (-0.5, -1.5), (1.5, 0.5);
    # post = pre + 1 everywhere: mean 2.5, the same centred vectors -> theta 0, while raw theta is not 0
    pm = pd.DataFrame({"reward_chosen_pre": [1.0, 3], "reward_rejected_pre": [0.0, 2],
                       "reward_chosen_post": [2.0, 4], "reward_rejected_post": [1.0, 3]})
    assert centered_theta(pm) == pytest.approx([0.0, 0.0])
    raw = reward_shift_theta(pm.reward_chosen_pre, pm.reward_rejected_pre, pm.reward_chosen_post,
                             pm.reward_rejected_post)
    assert abs(raw[0]) > 1


def test_imprint_per_sd_and_joint_wald_of_collinear_lengths():
    """Two near-collinear length measures: per-SD estimates are estimate x SD, and the joint Wald F
    equals statsmodels' f_test with the same (iid) covariance."""
    rng = np.random.default_rng(4)
    n = 300
    tokens = rng.normal(100, 20, 2 * n)
    words = tokens * 0.8 + rng.normal(0, 1.0, 2 * n)        # VIF in the hundreds
    other = rng.normal(0, 1, 2 * n)
    y = 0.01 * tokens + 0.01 * words + 0.5 * other + rng.normal(0, 1, 2 * n)
    rows = pd.DataFrame({"pair_id": np.repeat(np.arange(n), 2), "side": ["chosen", "rejected"] * n,
                         "post": y, "h.len_tokens": tokens, "h.len_words": words, "h.other": other})
    res = imprint(rows, ["h.len_tokens", "h.len_words", "h.other"], targets=("post",), se="iid")
    t = res.table.set_index("feature")
    sd = rows["h.other"].std(ddof=1)
    assert t.loc["h.other", "estimate_per_sd"] == pytest.approx(t.loc["h.other", "estimate"] * sd)
    assert t.loc["h.other", "ci_high_per_sd"] == pytest.approx(t.loc["h.other", "ci_high"] * sd)
    w = res.wald.iloc[0]
    assert w["term"] == "length: h.len_tokens + h.len_words" and w["df_num"] == 2
    X = sm.add_constant(rows[["h.len_tokens", "h.len_words", "h.other"]].to_numpy())
    ref = sm.OLS(y, X).fit().f_test(np.array([[0, 1, 0, 0], [0, 0, 1, 0.0]]))
    assert w["estimate"] == pytest.approx(float(np.squeeze(ref.fvalue)), rel=1e-6)
    assert w["p"] == pytest.approx(float(ref.pvalue), rel=1e-4, abs=1e-300)
    assert w["p"] < 1e-6     # jointly clear, whatever the two separate estimates say
