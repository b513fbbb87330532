"""Robustness metrics: pure functions on DataFrames (no SQL, no model).

Conventions (also written into every output that carries them):

- **margin** of a pair under an RM = r(chosen) - r(rejected); the pair is *aligned* (delta = 1) when
  the margin is > 0, else misaligned (delta = 0; an exact tie counts as not aligned and is flagged).
- A rewrite replaces ONE side of a pair; ``margin_after`` is the margin with that side replaced and
  the other side as it was.
- ``became_misaligned`` = aligned before and not after; ``became_aligned`` = the reverse (post-D RM
  for the robustness score; every RM for the per-RM flip columns).
- **feature flip** ``flip_k = x_k(before) - x_k(after)`` (the paper's sign): positive means the
  rewrite LOWERED feature k. Flip indicators per side: ``{side}_{feature}_down`` = the rewritten
  side's feature went down (flip > 0), ``{side}_{feature}_up`` = it went up (flip < 0).
- **robustness score** (paper: pi) = coefficients of a linear probability model of
  ``became_misaligned`` (and of ``became_aligned``) on the flip indicators, one row per rewrite,
  with an intercept and a ``side_rejected`` control, heteroskedasticity-robust (HC1) standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

SIGN_CONVENTION = "flip = before - after (positive: the rewrite lowered the feature)"
DISCRETE_KINDS = ("binary", "ordinal")


def reward_changes(rw: pd.DataFrame, scores: pd.DataFrame, *, tol: float = 0.0) -> pd.DataFrame:
    """Per rewrite and RM: the rewritten side's old and new reward and the pair's margin before/after.

    ``rw``: rewrite_id, side, original_text_id, new_text_id, other_text_id (+ any columns, kept).
    ``scores``: model_id, role, text_id, reward. Rewrites missing a score are dropped.
    Returns rw's columns + model_id, role, old, new, change, margin_before, margin_after,
    agree_before, agree_after, became_misaligned, became_aligned, tie_after.
    ``tol``: the fit's tie tolerance: aligned = margin > tol, |margin| <= tol is a tie (``tie_after``),
    which these per-rewrite columns count as not aligned (the ``all_rewrites`` convention).
    """
    s = scores[["model_id", "role", "text_id", "reward"]].drop_duplicates(["model_id", "text_id"])
    out = rw.merge(s.rename(columns={"text_id": "original_text_id", "reward": "old"}), on="original_text_id")
    out = out.merge(s[["model_id", "text_id", "reward"]].rename(columns={"text_id": "new_text_id", "reward": "new"}),
                    on=["model_id", "new_text_id"])
    out = out.merge(s[["model_id", "text_id", "reward"]].rename(columns={"text_id": "other_text_id", "reward": "other"}),
                    on=["model_id", "other_text_id"])
    out = out.dropna(subset=["old", "new", "other"])
    sign = np.where(out["side"] == "chosen", 1.0, -1.0)
    out["change"] = out["new"] - out["old"]
    out["margin_before"] = sign * (out["old"] - out["other"])
    out["margin_after"] = sign * (out["new"] - out["other"])
    tol = float(tol)
    out["agree_before"] = (out["margin_before"] > tol).astype(int)
    out["agree_after"] = (out["margin_after"] > tol).astype(int)
    out["tie_after"] = out["margin_after"].abs() <= tol
    out["became_misaligned"] = ((out["agree_before"] == 1) & (out["agree_after"] == 0)).astype(int)
    out["became_aligned"] = ((out["agree_before"] == 0) & (out["agree_after"] == 1)).astype(int)
    return out.reset_index(drop=True)


def flip_label(before: float, after: float) -> str:
    """``aligned->misaligned`` | ``misaligned->aligned`` | ``stays aligned`` | ``stays misaligned``."""
    b, a = before > 0, after > 0
    if b and not a:
        return "aligned->misaligned"
    if a and not b:
        return "misaligned->aligned"
    return "stays aligned" if a else "stays misaligned"


def feature_flips(rw: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """Per rewrite and feature: value before, after and ``flip = before - after``.

    ``feats``: long text_id, feature, value. Returns rewrite_id, side, feature, before, after, flip.
    """
    f = feats[["text_id", "feature", "value"]].drop_duplicates(["text_id", "feature"])
    out = rw[["rewrite_id", "side", "original_text_id", "new_text_id"]].merge(
        f.rename(columns={"text_id": "original_text_id", "value": "before"}), on="original_text_id")
    out = out.merge(f.rename(columns={"text_id": "new_text_id", "value": "after"}), on=["new_text_id", "feature"])
    out["flip"] = out["before"] - out["after"]
    return out[["rewrite_id", "side", "feature", "before", "after", "flip"]].reset_index(drop=True)


def short_feature_names(features: list[str]) -> dict[str, str]:
    """``"featurizer.name"`` -> ``"name"`` where the name alone is unambiguous."""
    base = {f: f.rpartition(".")[2] for f in features}  # featurizers carry dots (llm:qwen2.5), names do not
    counts = pd.Series(list(base.values())).value_counts()
    return {f: (b if counts[b] == 1 else f) for f, b in base.items()}


def flip_indicators(flips: pd.DataFrame, rewrite_ids: list[str] | None = None,
                    features: list[str] | None = None, sides=("chosen", "rejected"), tol: float = 1e-9) -> pd.DataFrame:
    """Wide 0/1 indicators, one row per rewrite: ``{side}_{feature}_down`` / ``_up`` (see module doc).

    Rewrites without feature values get 0 everywhere (they changed nothing that was measured).
    """
    fl = flips if features is None else flips[flips["feature"].isin(features)]
    ids = list(rewrite_ids) if rewrite_ids is not None else list(dict.fromkeys(flips["rewrite_id"]))
    names = short_feature_names(sorted(fl["feature"].unique()))
    cols: dict[str, pd.Series] = {}
    for side in sides:
        part = fl[fl["side"] == side]
        for feat in sorted(fl["feature"].unique()):
            p = part[part["feature"] == feat].set_index("rewrite_id")["flip"]
            p = p.reindex(ids).fillna(0.0)
            cols[f"{side}_{names[feat]}_down"] = (p > tol).astype(int)
            cols[f"{side}_{names[feat]}_up"] = (p < -tol).astype(int)
    out = pd.DataFrame(cols, index=pd.Index(ids, name="rewrite_id"))
    return out


@dataclass
class LPMResult:
    table: pd.DataFrame          # outcome, term, estimate, se, ci_low, ci_high, p, n, se_type
    dropped: list[str]           # terms dropped (too rare or collinear), with the reason
    n: int


def _independent_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    keep: list[str] = []
    dropped: list[str] = []
    for c in X.columns:
        cand = keep + [c]
        if np.linalg.matrix_rank(X[cand].to_numpy(float)) == len(cand):
            keep.append(c)
        else:
            dropped.append(f"{c} (collinear)")
    return keep, dropped


def lpm(y: pd.Series, X: pd.DataFrame, *, outcome: str, min_count: int = 5, alpha: float = 0.05) -> LPMResult:
    """OLS of a 0/1 outcome on 0/1 regressors + intercept, HC1 standard errors, normal 95 % intervals.

    Regressors with fewer than ``min_count`` ones (or zeros) are dropped, then collinear ones.
    """
    import statsmodels.api as sm

    dropped: list[str] = []
    keep_cols = []
    for c in X.columns:
        ones = int(X[c].sum())
        if ones < min_count or len(X) - ones < min_count:
            dropped.append(f"{c} (only {ones} of {len(X)} rewrites)")
        else:
            keep_cols.append(c)
    Xd = X[keep_cols].astype(float)
    Xd.insert(0, "intercept", 1.0)
    cols, coll = _independent_columns(Xd)
    dropped += coll
    Xd = Xd[cols]
    n = len(y)
    rows = []
    if n > len(cols) and y.nunique() > 1:
        res = sm.OLS(y.astype(float).to_numpy(), Xd.to_numpy(), hasconst=True).fit(cov_type="HC1")
        ci = res.conf_int(alpha)
        for i, term in enumerate(cols):
            rows.append({"outcome": outcome, "term": term, "estimate": float(res.params[i]),
                         "se": float(res.bse[i]), "ci_low": float(ci[i][0]), "ci_high": float(ci[i][1]),
                         "p": float(res.pvalues[i]), "n": n, "se_type": "HC1"})
    else:
        dropped.append(f"(no fit: n={n}, outcome takes {y.nunique()} value(s))")
    table = pd.DataFrame(rows, columns=["outcome", "term", "estimate", "se", "ci_low", "ci_high", "p", "n", "se_type"])
    return LPMResult(table, dropped, n)


def robustness_lpm(changes_post: pd.DataFrame, indicators: pd.DataFrame, *, min_count: int = 5,
                   outcomes=("became_misaligned", "became_aligned")) -> LPMResult:
    """The robustness score: LPMs of ``outcomes`` (post-D RM, one row per rewrite) on flip indicators.

    ``changes_post``: rows of :func:`reward_changes` for the post-D RM (rewrite_id, side, outcomes).
    ``indicators``: :func:`flip_indicators` indexed by rewrite_id.
    """
    d = changes_post.set_index("rewrite_id")
    X = indicators.reindex(d.index).fillna(0).astype(int)
    sides = d["side"].unique()
    if len(sides) > 1:
        X.insert(0, "side_rejected", (d["side"] == "rejected").astype(int).to_numpy())
    tables, dropped = [], []
    for oc in outcomes:
        r = lpm(d[oc], X, outcome=oc, min_count=min_count)
        tables.append(r.table)
        dropped += [f"{oc}: {x}" for x in r.dropped]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return LPMResult(table, dropped, len(d))


def mean_ci(x: pd.Series, alpha: float = 0.05) -> tuple[float, float, float, int]:
    """Mean and t-interval (NaN bounds for n < 2)."""
    from scipy import stats

    x = pd.Series(x).dropna().astype(float)
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    m = float(x.mean())
    if n < 2:
        return (m, math.nan, math.nan, n)
    se = float(x.std(ddof=1)) / math.sqrt(n)
    h = float(stats.t.ppf(1 - alpha / 2, n - 1)) * se
    return (m, m - h, m + h, n)


def sensitivity(changes: pd.DataFrame) -> pd.DataFrame:
    """Mean reward change per (perturbation, side, RM) with 95 % t-intervals.

    ``changes``: :func:`reward_changes` rows with a ``perturbation`` column (NULL -> the rewriter name).
    Also a side ``all`` per perturbation and RM.
    """
    if changes.empty:
        return pd.DataFrame(columns=["perturbation", "side", "model_id", "role", "mean_change", "ci_low", "ci_high", "n"])
    c = changes.copy()
    if "rewriter" in c:
        c["perturbation"] = c["perturbation"].where(c["perturbation"].notna(), c["rewriter"])
    rows = []
    both = pd.concat([c, c.assign(side="all")], ignore_index=True)
    for (pert, side, mid, role), g in both.groupby(["perturbation", "side", "model_id", "role"], dropna=False):
        m, lo, hi, n = mean_ci(g["change"])
        rows.append({"perturbation": pert, "side": side, "model_id": mid, "role": role,
                     "mean_change": m, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


def flip_rates(changes: pd.DataFrame) -> pd.DataFrame:
    """Per RM role (and perturbation): share of rewrites that made the pair misaligned / aligned."""
    if changes.empty:
        return pd.DataFrame(columns=["role", "n", "became_misaligned", "became_aligned", "mean_abs_change"])
    return (changes.assign(abs_change=changes["change"].abs())
            .groupby("role").agg(n=("rewrite_id", "size"), became_misaligned=("became_misaligned", "mean"),
                                 became_aligned=("became_aligned", "mean"), mean_abs_change=("abs_change", "mean"))
            .reset_index())


# -- the robustness score, as a referee would accept it ---------------------------------------------

ROBUSTNESS_VARIANTS = ("at_risk", "all_rewrites")
VARIANT_LABELS = {
    "at_risk": "pairs at risk: became_misaligned on rewrites of pairs aligned before, became_aligned on "
               "pairs misaligned before; rewrites whose margin is a tie before or after left out",
    "all_rewrites": "every rewrite (the paper's fit: its n = 1,608 counts all rewrites; a tie, |margin| <= the "
                    "fit's tie tolerance, counts as not aligned); structural zeros dilute it: kept as a labelled "
                    "comparison only",
}
CONTROL_TERMS = ("intercept", "side_rejected")
ROBUSTNESS_TABLE_COLUMNS = [
    "outcome", "variant", "term", "estimate", "se", "ci_low", "ci_high", "p", "p_bonferroni", "p_bh",
    "n", "events", "n_flip", "events_flip", "p_exact", "p_method", "ci_method", "status", "se_type",
]
SE_EPS = 1e-9
_FLOAT_COLS = ("estimate", "se", "ci_low", "ci_high", "p", "p_bonferroni", "p_bh", "p_exact")
_INT_COLS = ("n", "events", "n_flip", "events_flip")


def _typed(rows: list[dict]) -> pd.DataFrame:
    t = pd.DataFrame(rows, columns=ROBUSTNESS_TABLE_COLUMNS)
    for c in _FLOAT_COLS:
        t[c] = pd.to_numeric(t[c], errors="coerce").astype(float)
    for c in _INT_COLS:
        t[c] = pd.to_numeric(t[c], errors="coerce").astype("Int64")
    return t


def at_risk_rows(changes: pd.DataFrame, outcome: str, *, tie_tol: float = 0.0,
                 variant: str = "at_risk") -> tuple[pd.DataFrame, pd.Series, dict]:
    """The rows an outcome is modelled on, the 0/1 outcome, and counts of what was left out.

    ``at_risk``: became_misaligned on rows with margin_before > tol (aligned before), outcome
    margin_after < -tol; became_aligned on rows with margin_before < -tol, outcome margin_after > tol;
    rows whose margin after is a tie (|margin_after| <= tol) are left out of both.
    ``all_rewrites``: every row, the outcome column as :func:`reward_changes` wrote it.
    """
    mb = changes["margin_before"].astype(float)
    ma = changes["margin_after"].astype(float)
    tol = float(tie_tol)
    if variant == "all_rewrites":  # every rewrite; a tie (|margin| <= tol) counts as not aligned
        if outcome == "became_misaligned":
            y = (mb > tol) & (ma <= tol)
        elif outcome == "became_aligned":
            y = (mb <= tol) & (ma > tol)
        else:
            raise ValueError(f"unknown outcome {outcome!r}")
        return changes, y.astype(int), {"n_all": len(changes)}
    if variant != "at_risk":
        raise ValueError(f"variant must be one of {ROBUSTNESS_VARIANTS}, not {variant!r}")
    tie_b = mb.abs() <= tol
    tie_a = ma.abs() <= tol
    if outcome == "became_misaligned":
        risk = mb > tol
        y = ma < -tol
    elif outcome == "became_aligned":
        risk = mb < -tol
        y = ma > tol
    else:
        raise ValueError(f"unknown outcome {outcome!r}")
    keep = risk & ~tie_a
    counts = {"n_all": len(changes), "not_at_risk": int((~risk & ~tie_b).sum()), "tie_before": int(tie_b.sum()),
              "tie_after": int((risk & tie_a).sum())}
    return changes[keep.to_numpy()], y[keep.to_numpy()].astype(int), counts


def _fisher(a: int, b: int, c: int, d: int) -> float:
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a, b], [c, d]]).pvalue)


N_PERMUTATIONS = 9999
PERMUTATION_METHOD = (f"permutation by pair (a pair's rewrites keep their outcomes together, shuffled among "
                      f"pairs with the same rewritten sides; {N_PERMUTATIONS:,} draws, seed 0, two-sided)")


def pair_permutation_p(y, x, groups, sides=None, *, n_perm: int = N_PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p of the difference in event rates with the flip ``x`` and without it, by a permutation
    that respects the pairing: each pair's vector of outcomes (one per rewritten side) moves as one unit to
    another pair with the same sides, so the within-pair dependence stays (Fisher's test treats a pair's
    two rewrites as independent). Statistic: events among the rows with the flip (the rates' difference is
    monotone in it); p = min(1, 2 min(P(S* >= S), P(S* <= S))) with the +1 correction.
    """
    d = pd.DataFrame({"y": np.asarray(y, int), "x": np.asarray(x, int), "g": np.asarray(groups).astype(str)})
    d["side"] = np.asarray(sides).astype(str) if sides is not None else d.groupby("g").cumcount().astype(str)
    d = d.sort_values(["g", "side"], kind="stable")
    s_obs = int(d.loc[d["x"] == 1, "y"].sum())
    rng = np.random.default_rng(seed)
    s_perm = np.zeros(n_perm, dtype=np.int64)
    pattern = d.groupby("g", sort=True)["side"].agg(lambda v: "|".join(v))
    for _, gids in pattern.groupby(pattern, sort=True):
        sub = d[d["g"].isin(set(gids.index))]
        k = int(len(sub) / len(gids))
        Y = sub["y"].to_numpy().reshape(len(gids), k)
        X = sub["x"].to_numpy().reshape(len(gids), k)
        if len(gids) == 1:
            s_perm += int((X * Y).sum())
            continue
        perm = np.argsort(rng.random((n_perm, len(gids))), axis=1)
        s_perm += np.einsum("bij,ij->b", Y[perm], X)
    hi = (1 + int((s_perm >= s_obs).sum())) / (n_perm + 1)
    lo = (1 + int((s_perm <= s_obs).sum())) / (n_perm + 1)
    return float(min(1.0, 2 * min(hi, lo)))


def _newcombe(e1: int, n1: int, e0: int, n0: int, alpha: float) -> tuple[float, float]:
    from statsmodels.stats.proportion import confint_proportions_2indep

    lo, hi = confint_proportions_2indep(e1, n1, e0, n0, method="newcomb", compare="diff", alpha=alpha)
    return float(lo), float(hi)


def robustness_terms(y: pd.Series, X: pd.DataFrame, *, outcome: str, variant: str = "at_risk",
                     groups: pd.Series | None = None, min_count: int = 5, min_events: int = 5,
                     alpha: float = 0.05, sides: pd.Series | None = None) -> pd.DataFrame:
    """One row per term (ROBUSTNESS_TABLE_COLUMNS): an LPM of ``y`` on the 0/1 flips ``X`` (+ intercept),
    standard errors clustered by ``groups`` (the pair; HC1 when none), and per flip its 2x2 table.

    - ``n``/``events``: rows and outcome events in the fit; ``n_flip``/``events_flip``: rows with the
      flip and events among them.
    - not estimable (estimate NULL, the reason in ``status``): fewer than ``min_events`` events (or
      non-events) in the fit; a flip that does not vary or is present (absent) in fewer than
      ``min_count`` rows; a flip collinear with earlier terms; a standard error ~ 0.
    - small cells: when a cell of the flip's 2x2 table (events/non-events with/without the flip) is
      below ``min_events``, the LPM's normal approximation is not trusted: ``p`` is Fisher's exact
      test of the 2x2 table, the estimate the (unadjusted) difference in rates with the flip and
      without it, and the interval Newcombe's for that difference (``p_method``, ``ci_method`` and
      ``status`` say so). ``p_exact`` is the Fisher p of every flip either way.
    Adjusted p-values are filled by :func:`adjust_robustness`.
    """
    import statsmodels.api as sm

    y = pd.Series(y).astype(int).reset_index(drop=True)
    X = X.reset_index(drop=True).astype(int)
    n = len(y)
    ev = int(y.sum())
    rows: list[dict] = []

    def row(term: str, **kw) -> dict:
        d = {c: None for c in ROBUSTNESS_TABLE_COLUMNS}
        d.update({"outcome": outcome, "variant": variant, "term": term, "n": n, "events": ev})
        if term in X.columns:
            d["n_flip"] = int(X[term].sum())
            d["events_flip"] = int(y[X[term] == 1].sum())
        d.update(kw)
        return d

    if ev < min_events or n - ev < min_events:
        why = (f"not estimable: {ev} events of {n} rewrites at risk (at least {min_events} events and "
               f"{min_events} non-events needed)")
        return _typed([row(t, status=why) for t in ["intercept", *X.columns]])
    keep: list[str] = []
    reasons: dict[str, str] = {}
    for c in X.columns:
        ones = int(X[c].sum())
        if ones == 0 or ones == n:
            reasons[c] = f"not estimable: the flip does not vary ({ones} of {n})"
        elif ones < min_count or n - ones < min_count:
            reasons[c] = f"not estimable: flip in {ones} of {n} rewrites (min_count {min_count})"
        else:
            keep.append(c)
    Xd = X[keep].astype(float)
    Xd.insert(0, "intercept", 1.0)
    cols, coll = _independent_columns(Xd)
    for c in coll:
        reasons[c.split(" ")[0]] = "not estimable: collinear with the terms before it"
    Xd = Xd[cols]
    if n <= len(cols):
        return _typed([row(t, status=f"not estimable: {n} rows for {len(cols)} terms")
                       for t in ["intercept", *X.columns]])
    model = sm.OLS(y.to_numpy(float), Xd.to_numpy(), hasconst=True)
    g = None if groups is None else pd.factorize(pd.Series(groups).reset_index(drop=True))[0]
    if sides is not None:
        sides = pd.Series(sides).reset_index(drop=True).to_numpy()
    if g is not None and len(set(g)) > len(cols):
        res = model.fit(cov_type="cluster", cov_kwds={"groups": g})
        se_type = "cluster(pair)"
    else:
        res = model.fit(cov_type="HC1")
        se_type = "HC1"
    ci = res.conf_int(alpha)
    q = None
    for i, term in enumerate(cols):
        est, se, p = float(res.params[i]), float(res.bse[i]), float(res.pvalues[i])
        kw = {"estimate": est, "se": se, "ci_low": float(ci[i][0]), "ci_high": float(ci[i][1]), "p": p,
              "se_type": se_type, "p_method": f"LPM z test ({se_type})", "ci_method": f"normal ({se_type})",
              "status": "ok"}
        if not np.isfinite(se) or se < SE_EPS:
            rows.append(row(term, status=f"not estimable: standard error ~ 0 ({se:.1g})", se_type=se_type))
            continue
        if term != "intercept":
            x = X[term]
            n1, n0 = int(x.sum()), int(n - x.sum())
            e1, e0 = int(y[x == 1].sum()), int(y[x == 0].sum())
            pe = _fisher(e1, n1 - e1, e0, n0 - e0)
            kw["p_exact"] = pe
            if min(e1, n1 - e1, e0, n0 - e0) < min_events:
                lo, hi = _newcombe(e1, n1, e0, n0, alpha)
                paired = g is not None and len(set(g)) < n  # some pair gives several rewrites
                if paired:
                    p_small = pair_permutation_p(y, x, g, sides)
                    how, test = PERMUTATION_METHOD, "permutation test by pair"
                else:  # one rewrite per pair: the rows are independent and Fisher's test is exact
                    p_small, how, test = pe, "Fisher exact (2x2 of the flip; one rewrite per pair)", "exact test"
                kw.update({"estimate": e1 / n1 - e0 / n0, "se": None, "p": p_small, "ci_low": lo, "ci_high": hi,
                           "p_method": how,
                           "ci_method": "Newcombe (difference in rates, flip vs no flip; treats rewrites as "
                                        "independent)" if paired else
                                        "Newcombe (difference in rates, flip vs no flip)",
                           "status": f"small cells ({e1}/{n1} with the flip, {e0}/{n0} without): {test}; "
                                     "estimate = difference in rates, unadjusted"})
        rows.append(row(term, **kw))
    done = {r["term"] for r in rows}
    for c in X.columns:
        if c not in done:
            rows.append(row(c, status=reasons.get(c, "not estimable")))
    return _typed(rows)


def adjust_robustness(table: pd.DataFrame) -> pd.DataFrame:
    """Bonferroni and BH across the table's estimable flip terms (controls left out), per variant."""
    from analysis.metrics.linreg import adjust_p

    t = table.copy()
    t["p_bonferroni"] = np.nan
    t["p_bh"] = np.nan
    for v in t["variant"].dropna().unique():
        m = (t["variant"] == v) & ~t["term"].isin(CONTROL_TERMS) & t["p"].notna()
        if m.any():
            b, h = adjust_p(t.loc[m, "p"].astype(float).to_numpy())
            t.loc[m, "p_bonferroni"] = b
            t.loc[m, "p_bh"] = h
    return t


def robustness_score(changes_post: pd.DataFrame, indicators: pd.DataFrame, *, tie_tol: float = 0.0,
                     min_count: int = 5, min_events: int = 5, alpha: float = 0.05,
                     variants=ROBUSTNESS_VARIANTS,
                     outcomes=("became_misaligned", "became_aligned")) -> tuple[pd.DataFrame, list[str]]:
    """The robustness table (every variant x outcome x term) and messages saying who was left out.

    ``changes_post``: :func:`reward_changes` rows of the post-D RM (rewrite_id, side, margins, outcomes,
    and pair_id for clustering). ``indicators``: :func:`flip_indicators` indexed by rewrite_id.
    """
    d = changes_post.reset_index(drop=True)
    X = indicators.reindex(d["rewrite_id"]).fillna(0).astype(int).reset_index(drop=True)
    if d["side"].nunique() > 1:
        X.insert(0, "side_rejected", (d["side"] == "rejected").astype(int).to_numpy())
    tables, msgs = [], []
    for v in variants:
        for oc in outcomes:
            rows, yy, counts = at_risk_rows(d, oc, tie_tol=tie_tol, variant=v)
            idx = rows.index
            groups = rows["pair_id"] if "pair_id" in rows.columns else None
            t = robustness_terms(yy, X.loc[idx], outcome=oc, variant=v, groups=groups, min_count=min_count,
                                 min_events=min_events, alpha=alpha,
                                 sides=rows["side"] if "side" in rows.columns else None)
            tables.append(t)
            if v == "at_risk":
                msgs.append(f"{oc} (at risk): {len(rows):,} of {counts['n_all']:,} rewrites at risk, "
                            f"{int(yy.sum()):,} events; left out: {counts['not_at_risk']:,} not at risk, "
                            f"{counts['tie_before']:,} tied before, {counts['tie_after']:,} tied after")
    table = adjust_robustness(pd.concat(tables, ignore_index=True)) if tables else pd.DataFrame(
        columns=ROBUSTNESS_TABLE_COLUMNS)
    return table, msgs
