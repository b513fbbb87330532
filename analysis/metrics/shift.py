"""Reward shift theta (SEAL metric 5).

u = (pre r_chosen, pre r_rejected), v = (post r_chosen, post r_rejected); theta = signed angle from u
to v in degrees, atan2(u_x v_y - u_y v_x, u . v). This equals sign(cross) * arccos(clip(cos, -1, 1))
but is exact near 0 and 180 degrees and never NaN except for a zero (or missing) vector: those give
NaN and are counted. Positive theta turns u counter-clockwise, towards the rejected axis.

Ties: a pair tied under either RM sits on the diagonal r_c = r_r, where theta is 0 or 180 degrees by
accident of rounding; tied pairs are left out of the summaries and the regression and counted
(``n_tie``). Offsets: rewards are defined up to a constant per RM, and theta is not invariant to it
(adding c to both rewards of a pair moves u along the diagonal and changes its angle). The centred
variant ``theta_centered`` subtracts from each RM's rewards that RM's mean over the study's texts
before taking the angle; it is stored beside ``theta``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.metrics.linreg import regress


def reward_shift_theta(pre_c, pre_r, post_c, post_r) -> np.ndarray:
    """Signed angle in degrees from u=(pre_c, pre_r) to v=(post_c, post_r); NaN for zero/missing."""
    ux = np.asarray(pre_c, dtype=float)
    uy = np.asarray(pre_r, dtype=float)
    vx = np.asarray(post_c, dtype=float)
    vy = np.asarray(post_r, dtype=float)
    cross = ux * vy - uy * vx
    dot = ux * vx + uy * vy
    theta = np.degrees(np.arctan2(cross, dot))
    zero = ((ux == 0) & (uy == 0)) | ((vx == 0) & (vy == 0))
    theta = np.where(zero | np.isnan(cross) | np.isnan(dot), np.nan, theta)
    return theta


def theta_summary(frame: pd.DataFrame, by: str | list[str] | None = None, col: str = "theta") -> pd.DataFrame:
    """n (untied pairs), n_tie (left out), n_nan, mean, median, counts of positive/negative/zero theta,
    and a two-sided sign test (scipy.stats.binomtest of positives among non-zero, p = 0.5) per group."""
    by = [by] if isinstance(by, str) else list(by or [])
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        t = g[col].astype(float)
        tie = np.zeros(len(g), dtype=bool)
        for c in ("tie_pre", "tie_post"):
            if c in g.columns:
                tie |= pd.Series(g[c], dtype="boolean").fillna(False).to_numpy(bool)
        n_tie = int(tie.sum())
        t = t[~tie]
        ok = t.dropna()
        pos = int((ok > 0).sum())
        neg = int((ok < 0).sum())
        p = float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else None
        d = {b: (None if pd.isna(k) else k) for b, k in zip(by, key)}
        d.update({"n": len(t), "n_tie": n_tie, "n_nan": int(t.isna().sum()),
                  "mean": float(ok.mean()) if len(ok) else None,
                  "median": float(ok.median()) if len(ok) else None,
                  "n_pos": pos, "n_neg": neg, "n_zero": int((ok == 0).sum()), "sign_test_p": p})
        rows.append(d)
    return pd.DataFrame(rows)


def theta_regression(frame: pd.DataFrame, side_features: list[str], *, col: str = "theta",
                     se: str = "hc1") -> tuple[pd.DataFrame, list[str]]:
    """OLS of theta on chosen-side and rejected-side features (one row per untied pair, HC1 SEs)."""
    tie = np.zeros(len(frame), dtype=bool)
    for c in ("tie_pre", "tie_post"):
        if c in frame.columns:
            tie |= pd.Series(frame[c], dtype="boolean").fillna(False).to_numpy(bool)
    tab, msgs = regress(frame[~tie], col, side_features, se=se, what="theta regression", target="theta")
    return tab, [f"theta regression: {int(tie.sum()):,} tied pairs left out"] + msgs


def centered_theta(pm: pd.DataFrame) -> np.ndarray:
    """theta after subtracting from each RM's rewards that RM's mean over the frame's texts."""
    cols = {}
    for role in ("pre", "post"):
        c, r = pm[f"reward_chosen_{role}"].astype(float), pm[f"reward_rejected_{role}"].astype(float)
        mu = np.nanmean(np.r_[c.to_numpy(), r.to_numpy()]) if (c.notna().any() or r.notna().any()) else 0.0
        cols[role] = (c - mu, r - mu)
    return reward_shift_theta(cols["pre"][0], cols["pre"][1], cols["post"][0], cols["post"][1])
