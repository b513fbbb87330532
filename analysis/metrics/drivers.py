"""What drives post-D misalignment (SEAL metric 6).

Outcome: misaligned = 1 when the post-D RM prefers the rejected side (agree_post == 0), 0 when it
prefers the chosen side; ties and unscored pairs are left out. Regressors: the chosen-side and the
rejected-side features of the pair ("chosen:NAME", "rejected:NAME"). Two models: a linear probability
model (OLS, HC1 robust SEs, the LPM's errors are heteroskedastic by construction) and a logit (HC1
sandwich standard errors too, labelled in se_type; the MLE ones assume the model is right). Perfect separation and non-convergence of the logit are reported, not raised.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.metrics.linreg import COEF_COLUMNS, add_adjusted_p, check_design, regress


def side_features(frame: pd.DataFrame, wide: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Per pair (aligned with ``frame``): 'chosen:F' and 'rejected:F' for each feature F.

    ``wide`` is indexed by text_id with one column per feature.
    """
    feats = [f for f in features if f in wide.columns]
    c = wide.reindex(frame["chosen_text_id"].to_numpy())[feats]
    r = wide.reindex(frame["rejected_text_id"].to_numpy())[feats]
    c.columns = [f"chosen:{f}" for f in feats]
    r.columns = [f"rejected:{f}" for f in feats]
    out = pd.concat([c.reset_index(drop=True), r.reset_index(drop=True)], axis=1)
    out.index = frame.index
    return out


def misalignment_drivers(frame: pd.DataFrame, xcols: list[str], *, agree_col: str = "agree_post",
                         alpha: float = 0.05, logit: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(lpm_table, logit_table, messages) for misalignment on ``xcols`` of ``frame``."""
    msgs: list[str] = []
    a = pd.Series(frame[agree_col], dtype="Int64")
    n_tie = int(a.isna().sum())
    d = frame.loc[a.notna().to_numpy(), xcols].copy()
    d["misaligned"] = (1 - a[a.notna()]).astype(float).to_numpy()
    msgs.append(f"drivers: outcome misaligned = (post-D RM prefers rejected); {n_tie:,} tied or unscored "
                "pairs left out")
    lpm, m = regress(d, "misaligned", xcols, se="hc1", what="drivers LPM", target="misaligned")
    msgs += m
    empty = pd.DataFrame(columns=COEF_COLUMNS)
    if not logit:
        return lpm, empty, msgs
    ok = d[["misaligned"] + xcols].notna().all(axis=1)
    dd = d[ok]
    y = dd["misaligned"].to_numpy(float)
    if len(dd) == 0 or y.min() == y.max():
        msgs.append("drivers logit: the outcome does not vary; not fitted")
        return lpm, empty, msgs
    Xf = dd[xcols].to_numpy(float)
    keep, kept, _ = check_design(Xf, xcols, intercept=True, what="term")
    X = np.column_stack([np.ones(len(dd)), Xf[:, keep]])
    names = ["const"] + kept
    if len(dd) <= X.shape[1] + 1:
        msgs.append("drivers logit: too few rows; not fitted")
        return lpm, empty, msgs
    import statsmodels.api as sm
    from scipy import stats

    from analysis.metrics.firth import separated_terms

    sep = separated_terms(Xf[:, keep], y, kept)
    why = ""
    res = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = sm.Logit(y, X).fit(disp=0, maxiter=200, cov_type="HC1")
        if any("separation" in str(w.message).lower() for w in caught):
            why = "the fitted probabilities reach 0 or 1 (quasi-separation)"
        elif not res.mle_retvals.get("converged", True):
            why = "the maximum likelihood fit did not converge in 200 iterations"
        elif not np.all(np.isfinite(np.asarray(res.bse, float))):
            why = "non-finite standard errors"
    except Exception as e:  # PerfectSeparationError, LinAlgError, ...
        why = f"the maximum likelihood fit failed ({type(e).__name__})"
    if sep and not why:
        why = "quasi-separation by " + ", ".join(sep)
    if why:  # the MLE does not exist (or was not found): its estimates and p-values are artefacts
        return lpm, *_firth_table(X, y, names, sep, why, alpha, msgs)
    est = np.asarray(res.params, dtype=float)
    se = np.asarray(res.bse, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    p = 2 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(1 - alpha / 2)
    tab = pd.DataFrame({"target": "misaligned", "term": names, "estimate": est, "se": se,
                        "ci_low": est - q * se, "ci_high": est + q * se, "p": p,
                        "n": len(dd), "se_type": "HC1", "r2": float(res.prsquared)})
    add_adjusted_p(tab, tab["term"] != "const")
    msgs.append(f"drivers logit: n = {len(dd):,}, robust (HC1 sandwich) SEs like the LPM's, z tests; r2 column "
                "holds McFadden's pseudo R^2")
    return lpm, tab[COEF_COLUMNS], msgs


def _firth_table(X: np.ndarray, y: np.ndarray, names: list[str], sep: list[str], why: str, alpha: float,
                 msgs: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The logit by Firth's penalised likelihood (analysis/metrics/firth.py) when the MLE has no maximum:
    estimates, Wald intervals from the penalised fit, p from the penalised likelihood ratio test; no
    p-value at all for a term whose constrained fit did not converge, nothing when the fit did not."""
    from scipy import stats

    from analysis.metrics.firth import FIRTH_SE_TYPE, firth_logit, firth_lrt_p

    sep_txt = (" (every pair at one end of " + ", ".join(sep) + " has the same outcome)") if sep else ""
    f = firth_logit(X, y)
    if not f.converged:
        msgs.append(f"drivers logit: not reported: {why}{sep_txt}, and Firth's penalised fit did not converge "
                    "either; no estimates or p-values")
        return pd.DataFrame(columns=COEF_COLUMNS), msgs
    se = np.sqrt(np.clip(np.diag(f.cov), 0, None))
    q = stats.norm.ppf(1 - alpha / 2)
    ps, bad = [], []
    for j, name in enumerate(names):
        p, ok = firth_lrt_p(X, y, f, j)
        ps.append(p if ok else np.nan)
        if not ok:
            bad.append(name)
    tab = pd.DataFrame({"target": "misaligned", "term": names, "estimate": f.beta, "se": se,
                        "ci_low": f.beta - q * se, "ci_high": f.beta + q * se, "p": ps,
                        "n": len(y), "se_type": FIRTH_SE_TYPE, "r2": np.nan})
    add_adjusted_p(tab, (tab["term"] != "const") & tab["p"].notna())
    msgs.append(f"drivers logit: the maximum likelihood estimate does not exist ({why}){sep_txt}: fitted by "
                "Firth's penalised likelihood instead (finite estimates; p from the penalised likelihood ratio "
                "test, intervals Wald from the penalised fit)"
                + (f"; no p-value for {', '.join(bad)} (the constrained fit did not converge)" if bad else ""))
    return tab[COEF_COLUMNS], msgs
