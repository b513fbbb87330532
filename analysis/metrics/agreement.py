"""Agreement of an RM with the human labels (SEAL metric 1).

delta = 1 when r(chosen) > r(rejected) by more than ``tol``, 0 when it is lower by more than ``tol``,
and a *tie* otherwise (default ``tol = 0``: exact equality). Identical texts are ties whatever the
rewards say. A pair the RM has not scored on both sides is *unscored*.

One convention everywhere (tables, summary, report, screens): **agreement = agree / decided** with
decided = agree + disagree, and **misalignment = 1 - agreement = disagree / decided**; ties and
unscored pairs are left out of both and counted beside them (``tie``, ``unscored``). Intervals are
Wilson score intervals on the decided pairs. ``agreement_decided`` is kept as an alias of
``agreement``; ``agreement_ties_as_disagree`` (agree / scored) is what ``agreement`` meant before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ROLES = ("pre", "post")


def compare(r_chosen, r_rejected, *, tol: float = 0.0, identical=None) -> tuple[pd.Series, pd.Series]:
    """Per pair: (agree, tie). agree is Int64 1/0 with <NA> for ties and unscored pairs; tie is
    boolean with <NA> for unscored pairs."""
    rc = pd.Series(r_chosen, dtype="float64").reset_index(drop=True)
    rr = pd.Series(r_rejected, dtype="float64").reset_index(drop=True)
    scored = rc.notna() & rr.notna()
    diff = rc - rr
    tie = scored & (diff.abs() <= tol)
    if identical is not None:
        ident = pd.Series(identical).reset_index(drop=True).fillna(False).astype(bool)
        tie = tie | (scored & ident)
    agree = pd.Series(pd.NA, index=rc.index, dtype="Int64")
    dec = scored & ~tie
    agree[dec] = (diff[dec] > 0).astype("int64")
    tie_out = tie.astype("boolean")
    tie_out[~scored] = pd.NA
    return agree, tie_out


def add_outcomes(frame: pd.DataFrame, *, tol: float = 0.0, roles=ROLES) -> pd.DataFrame:
    """Add margin_ROLE, agree_ROLE, tie_ROLE for each role with reward_chosen_ROLE/reward_rejected_ROLE."""
    out = frame.copy()
    ident = out["identical"] if "identical" in out.columns else None
    for role in roles:
        c, r = f"reward_chosen_{role}", f"reward_rejected_{role}"
        if c not in out.columns or r not in out.columns:
            out[c] = out.get(c, np.nan)
            out[r] = out.get(r, np.nan)
        out[f"margin_{role}"] = out[c].astype("float64") - out[r].astype("float64")
        a, t = compare(out[c], out[r], tol=tol, identical=None if ident is None else ident.to_numpy())
        out[f"agree_{role}"] = a.to_numpy()
        out[f"tie_{role}"] = t.to_numpy()
    return out


def _counts(agree: pd.Series, tie: pd.Series) -> dict:
    a = pd.Series(agree, dtype="Int64")
    t = pd.Series(tie, dtype="boolean")
    n = len(a)
    n_agree = int((a == 1).sum())
    n_dis = int((a == 0).sum())
    n_tie = int(t.fillna(False).sum())
    unscored = n - n_agree - n_dis - n_tie
    scored = n_agree + n_dis + n_tie
    dec = n_agree + n_dis
    lo, hi = wilson(n_agree, dec)
    agr = n_agree / dec if dec else None
    return {
        "n": n, "scored": scored, "decided": dec, "agree": n_agree, "disagree": n_dis, "tie": n_tie,
        "unscored": unscored, "agreement": agr, "agreement_low": lo, "agreement_high": hi,
        "misalignment": (1 - agr) if agr is not None else None,
        "misalignment_low": (1 - hi) if hi is not None else None,
        "misalignment_high": (1 - lo) if lo is not None else None,
        "agreement_decided": agr,
        "agreement_ties_as_disagree": n_agree / scored if scored else None,
        "tie_share": n_tie / scored if scored else None,
    }


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes of n (None, None when n = 0)."""
    if not n:
        return None, None
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(int(k), int(n), alpha=alpha, method="wilson")
    return float(lo), float(hi)


def mcnemar_exact(agree_pre, agree_post, alpha: float = 0.05) -> dict:
    """Pre vs post on the same pairs: McNemar's exact test on the discordant pairs.

    Pairs decided by both RMs only. b = reversed (pre agrees, post does not), c = got_aligned (the
    reverse); p = two-sided exact binomial test of b among b + c at 1/2. difference = agreement post -
    agreement pre on those pairs = (c - b) / n, with a Wald interval for a paired difference:
    se = sqrt(b + c - (c - b)^2 / n) / n.
    """
    from scipy.stats import binomtest

    a1 = pd.Series(agree_pre, dtype="Int64").reset_index(drop=True)
    a2 = pd.Series(agree_post, dtype="Int64").reset_index(drop=True)
    both = a1.notna() & a2.notna()
    x1 = a1[both].astype(int).to_numpy()
    x2 = a2[both].astype(int).to_numpy()
    n = int(both.sum())
    b = int(((x1 == 1) & (x2 == 0)).sum())
    c = int(((x1 == 0) & (x2 == 1)).sum())
    out = {"n_both_decided": n, "reversed": b, "got_aligned": c,
           "agreement_pre": float(x1.mean()) if n else None, "agreement_post": float(x2.mean()) if n else None,
           "difference": (c - b) / n if n else None, "diff_low": None, "diff_high": None,
           "p": float(binomtest(b, b + c, 0.5).pvalue) if b + c else None,
           "test": "McNemar exact (binomial on reversed vs got_aligned)",
           "interval": "Wald, paired difference"}
    if n:
        from scipy.stats import norm

        d = (c - b) / n
        se = np.sqrt(max(b + c - (c - b) ** 2 / n, 0.0)) / n
        q = float(norm.ppf(1 - alpha / 2))
        out["diff_low"], out["diff_high"] = d - q * se, d + q * se
    return out


def agreement(frame: pd.DataFrame, *, roles=ROLES, by: str | list[str] | None = None) -> pd.DataFrame:
    """Agreement table: one row per role (and group of ``by``) with counts and shares.

    ``frame`` has agree_ROLE / tie_ROLE columns (see :func:`add_outcomes`).
    """
    by = [by] if isinstance(by, str) else list(by or [])
    rows = []
    for role in roles:
        if f"agree_{role}" not in frame.columns:
            continue
        if by:
            for key, g in frame.groupby(by, dropna=False, sort=True):
                key = key if isinstance(key, tuple) else (key,)
                d = {"role": role, **{b: (None if pd.isna(k) else k) for b, k in zip(by, key)}}
                d.update(_counts(g[f"agree_{role}"], g[f"tie_{role}"]))
                rows.append(d)
        else:
            rows.append({"role": role, **_counts(frame[f"agree_{role}"], frame[f"tie_{role}"])})
    return pd.DataFrame(rows)
