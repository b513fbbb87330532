"""Regimes from the (pre-D, post-D) agreement pair, and the LM-labeler preference gamma.

Regimes (names in analysis/metrics/regime_names.py): stayed_aligned (1,1), got_aligned (0,1),
resists_alignment (0,0), reversed (1,0); ``tie`` when either RM tied, ``unscored`` when either RM
has not scored the pair (unscored takes precedence over tie).

gamma: with target features f_1..f_k in priority order, s(t) = sum_i 2^(k-i) f_i(t); for the paper's
(harmless, helpful) that is s = 2*harmless + helpful (harmlessness first). gamma = 'c' when
s(chosen) > s(rejected) (the labeler agrees with the human), 'i' when equal, 'r' when less; NULL when
a label is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics.regime_names import DECIDED, GAMMAS, REGIMES  # noqa: F401  (the one definition of the names)


def regime(agree_pre, agree_post, tie_pre=None, tie_post=None) -> pd.Series:
    """Vectorized regime names. agree_*: 1/0/NA; tie_*: True/False/NA (NA = unscored)."""
    ap = pd.Series(agree_pre, dtype="Int64").reset_index(drop=True)
    aq = pd.Series(agree_post, dtype="Int64").reset_index(drop=True)
    tp = pd.Series(tie_pre if tie_pre is not None else [False] * len(ap), dtype="boolean").reset_index(drop=True)
    tq = pd.Series(tie_post if tie_post is not None else [False] * len(aq), dtype="boolean").reset_index(drop=True)
    out = np.full(len(ap), "unscored", dtype=object)
    a1 = ap.fillna(-1).to_numpy()
    a2 = aq.fillna(-1).to_numpy()
    out[(a1 == 1) & (a2 == 1)] = "stayed_aligned"
    out[(a1 == 0) & (a2 == 1)] = "got_aligned"
    out[(a1 == 0) & (a2 == 0)] = "resists_alignment"
    out[(a1 == 1) & (a2 == 0)] = "reversed"
    tie = (tp.fillna(False) | tq.fillna(False)).to_numpy()
    # unscored: either tie flag NA and its agree NA (tie flag NA marks an unscored side)
    unscored = (tp.isna() & ap.isna()).to_numpy() | (tq.isna() & aq.isna()).to_numpy()
    out[tie & ~unscored] = "tie"
    out[unscored] = "unscored"
    return pd.Series(out, dtype=object)


def target_score(values: pd.DataFrame, columns: list[str]) -> pd.Series:
    """s(t) = sum_i 2^(k-i) * f_i(t) over ``columns`` (priority order); NaN when any is missing."""
    k = len(columns)
    w = np.array([2.0 ** (k - 1 - i) for i in range(k)])
    v = values[columns].to_numpy(float)
    s = v @ w
    s[np.isnan(v).any(axis=1)] = np.nan
    return pd.Series(s, index=values.index)


def gamma(chosen: pd.DataFrame, rejected: pd.DataFrame, columns: list[str]) -> pd.Series:
    """gamma per pair from aligned frames of chosen-side and rejected-side target labels."""
    sc = target_score(chosen.reset_index(drop=True), columns).to_numpy()
    sr = target_score(rejected.reset_index(drop=True), columns).to_numpy()
    out = np.full(len(sc), None, dtype=object)
    ok = ~(np.isnan(sc) | np.isnan(sr))
    out[ok & (sc > sr)] = "c"
    out[ok & (sc == sr)] = "i"
    out[ok & (sc < sr)] = "r"
    return pd.Series(out, dtype=object)


def regimes(frame: pd.DataFrame, *, by: str | list[str] | None = None) -> pd.DataFrame:
    """Counts and shares of each regime (per group of ``by``).

    share: of all pairs in the group; share_decided: of the pairs in the four decided regimes (what
    the paper's Table 1 reports; ties and unscored pairs left out of its denominator).
    """
    by = [by] if isinstance(by, str) else list(by or [])
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        counts = g["regime"].value_counts()
        n = len(g)
        n_dec = int(sum(counts.get(r, 0) for r in DECIDED))
        for r in REGIMES:
            c = int(counts.get(r, 0))
            d = {b: (None if pd.isna(k) else k) for b, k in zip(by, key)}
            d.update({"regime": r, "n": c, "share": c / n if n else None,
                      "share_decided": (c / n_dec if n_dec else None) if r in DECIDED else None})
            rows.append(d)
    return pd.DataFrame(rows)


def misalignment(frame: pd.DataFrame, *, by: str | list[str] | None = None, role: str = "post") -> pd.DataFrame:
    """Share of decided pairs (no tie, scored) where the RM prefers the rejected side, per group: the
    complement of agreement (agree / decided); ties and unscored pairs counted beside it, a Wilson
    interval on the decided pairs."""
    by = [by] if isinstance(by, str) else list(by or [])
    col = f"agree_{role}"
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    rows = []
    from analysis.metrics.agreement import wilson

    tcol = f"tie_{role}"
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        a = pd.Series(g[col], dtype="Int64")
        dec = int(a.notna().sum())
        mis = int((a == 0).sum())
        ties = int(pd.Series(g[tcol], dtype="boolean").fillna(False).sum()) if tcol in g.columns else 0
        lo, hi = wilson(mis, dec)
        d = {b: (None if pd.isna(k) else k) for b, k in zip(by, key)}
        d.update({"n": len(g), "decided": dec, "misaligned": mis, "tie": ties, "unscored": len(g) - dec - ties,
                  "misalignment": mis / dec if dec else None, "misalignment_low": lo, "misalignment_high": hi,
                  "agreement": (dec - mis) / dec if dec else None})
        rows.append(d)
    return pd.DataFrame(rows)
