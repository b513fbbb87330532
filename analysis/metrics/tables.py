"""The study tables of issue 17: agreement/misalignment, regime shares and pre-vs-post paired tests
with intervals, per RM and per slice (all, subset, split, held-out, gamma), and trivial baselines.

Pure functions on DataFrames; the fit writes their output (``agreement_stats``, ``regime_stats``,
``paired_tests``, ``baselines``). One convention (see agreement.py): agreement = agree / decided,
misalignment = 1 - agreement, ties and unscored counted beside them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics.agreement import _counts, compare, mcnemar_exact, wilson
from analysis.metrics.regimes import DECIDED

SLICES = ("subset", "split", "heldout", "gamma")
AGREEMENT_STATS_COLUMNS = [
    "model_id", "role", "slice", "value", "n", "decided", "agree", "disagree", "tie", "unscored", "agreement",
    "agreement_low", "agreement_high", "misalignment", "misalignment_low", "misalignment_high", "interval",
    "human_tie"]
REGIME_STATS_COLUMNS = ["slice", "value", "regime", "n", "decided", "share", "share_low", "share_high", "interval"]
PAIRED_COLUMNS = ["slice", "value", "n_both_decided", "reversed", "got_aligned", "agreement_pre", "agreement_post",
                  "difference", "diff_low", "diff_high", "p", "test", "interval", "p_bh"]
BH_NOTE = "p_bh: Benjamini-Hochberg across the tests of one slice (every subset, every split, ...)"
BASELINE_COLUMNS = ["baseline", "slice", "value", "n", "decided", "agree", "tie", "agreement", "agreement_low",
                    "agreement_high", "method"]
WILSON = "Wilson 95 % on decided pairs"


def heldout_label(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "unknown"
    return "held-out" if bool(v) else "in-sample"


def _slices(frame: pd.DataFrame, slices=SLICES):
    """(slice, value, sub-frame) for 'all' and each value of each slice column present."""
    yield "all", "all", frame
    for sl in slices:
        if sl not in frame.columns:
            continue
        col = frame[sl]
        if sl == "heldout":
            col = pd.Series([heldout_label(v) for v in col], index=frame.index)
        elif col.isna().all():
            continue
        for v, g in frame.groupby(col.fillna("(none)").astype(str), sort=True):
            yield sl, v, g


def agreement_stats(long: pd.DataFrame, *, tie_tol: float = 0.0, slices=SLICES) -> pd.DataFrame:
    """Per model and slice: counts, agreement and misalignment with Wilson intervals.

    ``long``: one row per (model, pair): model_id, role, reward_chosen, reward_rejected, identical and
    the slice columns (subset, split, heldout, gamma); optionally ``human_tie``.

    The one convention of the study: a pair the humans called a tie (``human_tie``) has no winner to
    agree with, so it is in none of n, decided, agree, disagree, tie (the RM's ties) or unscored; it is
    counted beside them in ``human_tie``. agreement = agree / decided, decided = agree + disagree.
    """
    rows = []
    for (mid, role), g in long.groupby(["model_id", "role"], dropna=False, sort=False):
        g = g.reset_index(drop=True)
        ht = (g["human_tie"].astype("boolean").fillna(False).to_numpy(bool) if "human_tie" in g.columns
              else np.zeros(len(g), bool))
        a, t = compare(g["reward_chosen"], g["reward_rejected"], tol=tie_tol,
                       identical=g["identical"].to_numpy() if "identical" in g.columns else None)
        gg = g.assign(_a=a.to_numpy(), _t=t.to_numpy(), _ht=ht)
        for sl, v, sub in _slices(gg, slices):
            keep = ~sub["_ht"].to_numpy(bool)
            c = _counts(sub["_a"][keep], sub["_t"][keep])
            rows.append({"model_id": mid, "role": None if pd.isna(role) else role, "slice": sl, "value": v,
                         **{k: c[k] for k in AGREEMENT_STATS_COLUMNS if k in c}, "interval": WILSON,
                         "human_tie": int((~keep).sum())})
    return pd.DataFrame(rows, columns=AGREEMENT_STATS_COLUMNS)


def regime_stats(pm: pd.DataFrame, slices=SLICES) -> pd.DataFrame:
    """Per slice and decided regime: count, share of decided pairs and its Wilson interval."""
    rows = []
    for sl, v, g in _slices(pm, slices):
        counts = g["regime"].value_counts()
        dec = int(sum(counts.get(r, 0) for r in DECIDED))
        for r in DECIDED:
            k = int(counts.get(r, 0))
            lo, hi = wilson(k, dec)
            rows.append({"slice": sl, "value": v, "regime": r, "n": k, "decided": dec,
                         "share": k / dec if dec else None, "share_low": lo, "share_high": hi, "interval": WILSON})
    return pd.DataFrame(rows, columns=REGIME_STATS_COLUMNS)


def paired_tests(pm: pd.DataFrame, slices=SLICES) -> pd.DataFrame:
    """McNemar's exact test of pre vs post per slice (pairs decided by both RMs)."""
    rows = []
    for sl, v, g in _slices(pm, slices):
        rows.append({"slice": sl, "value": v, **mcnemar_exact(g["agree_pre"], g["agree_post"])})
    return add_slice_bh(pd.DataFrame(rows, columns=PAIRED_COLUMNS))


def add_slice_bh(tab: pd.DataFrame) -> pd.DataFrame:
    """``p_bh``: Benjamini-Hochberg adjusted p across the rows of each slice (58 subsets: 58 tests, one
    family); the single 'all' test is its own family (p_bh = p)."""
    from analysis.metrics.linreg import adjust_p

    tab = tab.copy()
    tab["p_bh"] = np.nan
    for _sl, idx in tab.groupby("slice", sort=False).groups.items():
        _b, h = adjust_p(tab.loc[idx, "p"].astype(float).to_numpy())
        tab.loc[idx, "p_bh"] = h
    return tab


def length_beats_rm(agreement_stats: pd.DataFrame | list, baselines: pd.DataFrame | list) -> list[dict]:
    """Where a length-only rule agrees with the humans more than a pre-D/post-D RM does (slice all): one
    dict per (RM role, rule) with both agreements, their Wilson intervals and decided counts, and whether
    the intervals are apart. The first finding a referee looks for: the RM may have learned length."""
    ag = pd.DataFrame(agreement_stats)
    bl = pd.DataFrame(baselines)
    if ag.empty or bl.empty or "slice" not in ag.columns or "slice" not in bl.columns:
        return []
    ag = ag[(ag["slice"] == "all") & ag["role"].isin(["pre", "post"]) & ag["agreement"].notna()]
    bl = bl[(bl["slice"] == "all") & bl["agreement"].notna()]
    out = []
    for r in ag.itertuples():
        for b in bl.itertuples():
            if b.agreement > r.agreement:
                out.append({"role": r.role, "model_id": r.model_id, "rm_agreement": float(r.agreement),
                            "rm_low": r.agreement_low, "rm_high": r.agreement_high, "rm_decided": int(r.decided),
                            "baseline": b.baseline, "baseline_agreement": float(b.agreement),
                            "baseline_low": b.agreement_low, "baseline_high": b.agreement_high,
                            "baseline_decided": int(b.decided),
                            "apart": bool(b.agreement_low is not None and r.agreement_high is not None
                                          and b.agreement_low > r.agreement_high)})
    return out


# -- baselines --------------------------------------------------------------------------------------
def length_features(responses: pd.Series) -> np.ndarray:
    """log(1 + characters), log(1 + words), log(1 + lines) of each response."""
    r = responses.fillna("").astype(str)
    return np.column_stack([np.log1p(r.str.len()), np.log1p(r.str.split().str.len().fillna(0)),
                            np.log1p(r.str.count("\n"))]).astype(float)


def length_logit_scores(chosen: pd.Series, rejected: pd.Series, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validated margin of a length-only logistic model (folds by pair, seeded).

    The model: P(side A is preferred) = sigmoid(w . (f(A) - f(B))), no intercept (symmetric in the
    sides), f = :func:`length_features`; fitted on both orientations of each training pair. Returns
    w . (f(chosen) - f(rejected)) for each pair from the model that did not see it (> 0: agrees).
    """
    import statsmodels.api as sm

    d = length_features(chosen.reset_index(drop=True)) - length_features(rejected.reset_index(drop=True))
    n = len(d)
    out = np.full(n, np.nan)
    if n < 2 * folds:
        return out
    fold = np.random.default_rng(seed).permutation(n) % folds
    for k in range(folds):
        tr = fold != k
        X = np.vstack([d[tr], -d[tr]])
        y = np.r_[np.ones(tr.sum()), np.zeros(tr.sum())]
        keep = X.std(axis=0) > 0
        if not keep.any():
            continue
        try:
            w = sm.Logit(y, X[:, keep]).fit(disp=0, maxiter=100).params
        except Exception:  # singular or separated: this fold predicts nothing
            continue
        out[fold == k] = d[fold == k][:, keep] @ np.asarray(w)
    return out


def baselines(pf: pd.DataFrame, slices=SLICES, *, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Agreement of trivial rules with the human labels, per slice: longer-wins (more characters),
    shorter-wins, and the cross-validated length-only logistic model. Equal lengths are ties."""
    ch, rj = pf["chosen_response"].fillna("").astype(str), pf["rejected_response"].fillna("").astype(str)
    lc, lr = ch.str.len().to_numpy(float), rj.str.len().to_numpy(float)
    logit = length_logit_scores(ch, rj, folds=folds, seed=seed)
    rules = {
        "longer_wins": (lc - lr, "more characters wins; equal length is a tie"),
        "shorter_wins": (lr - lc, "fewer characters wins; equal length is a tie"),
        "length_logit": (logit, f"logistic on differences of log chars/words/lines, no intercept; "
                                f"{folds}-fold cross-validated by pair (seed {seed})"),
    }
    rows = []
    base = pf.reset_index(drop=True)
    for name, (margin, method) in rules.items():
        m = pd.Series(margin, dtype="float64")
        a, t = compare(m.where(m.notna()), pd.Series(np.where(m.notna(), 0.0, np.nan)), tol=0.0,
                       identical=base["identical"].to_numpy() if "identical" in base.columns else None)
        gg = base.assign(_a=a.to_numpy(), _t=t.to_numpy())
        for sl, v, g in _slices(gg, slices):
            c = _counts(g["_a"], g["_t"])
            rows.append({"baseline": name, "slice": sl, "value": v, "n": c["n"], "decided": c["decided"],
                         "agree": c["agree"], "tie": c["tie"], "agreement": c["agreement"],
                         "agreement_low": c["agreement_low"], "agreement_high": c["agreement_high"],
                         "method": method})
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)


LABELER_COLUMNS = ["gamma_features", "proxy", "slice", "value", "n", "c", "i", "r", "unlabelled", "agreement",
                   "agreement_low", "agreement_high"]


def labeler_agreement(pm: pd.DataFrame, gamma_features: list[str], proxy: bool,
                      slices=("subset", "split", "heldout")) -> pd.DataFrame:
    """How often the target labels behind gamma side with the human: agreement = c / (c + r) (pairs
    where the labeler prefers a side), i (indifferent) and unlabelled counted beside, Wilson interval."""
    rows = []
    if "gamma" not in pm.columns or not pm["gamma"].notna().any():
        return pd.DataFrame(columns=LABELER_COLUMNS)
    for sl, v, g in _slices(pm, slices):
        vc = g["gamma"].value_counts()
        c, i, r = (int(vc.get(k, 0)) for k in ("c", "i", "r"))
        lo, hi = wilson(c, c + r)
        rows.append({"gamma_features": ",".join(gamma_features), "proxy": bool(proxy), "slice": sl, "value": v,
                     "n": len(g), "c": c, "i": i, "r": r, "unlabelled": int(g["gamma"].isna().sum()),
                     "agreement": c / (c + r) if c + r else None, "agreement_low": lo, "agreement_high": hi})
    return pd.DataFrame(rows, columns=LABELER_COLUMNS)
