"""Reward shift theta (SEAL metric 5).

u = (pre r_chosen, pre r_rejected), v = (post r_chosen, post r_rejected); theta = signed angle from u
to v in degrees, atan2(u_x v_y - u_y v_x, u . v). This equals sign(cross) * arccos(clip(cos, -1, 1))
but is exact near 0 and 180 degrees and never NaN except for a zero (or missing) vector: those give
NaN and are counted. Positive theta turns u counter-clockwise, towards the rejected axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .linreg import regress


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
    """n, n_nan, mean, median, counts of positive/negative/zero theta, and a two-sided sign test
    (scipy.stats.binomtest of positives among non-zero, p = 0.5) per group."""
    by = [by] if isinstance(by, str) else list(by or [])
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        t = g[col].astype(float)
        ok = t.dropna()
        pos = int((ok > 0).sum())
        neg = int((ok < 0).sum())
        p = float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else None
        d = {b: (None if pd.isna(k) else k) for b, k in zip(by, key)}
        d.update({"n": len(t), "n_nan": int(t.isna().sum()),
                  "mean": float(ok.mean()) if len(ok) else None,
                  "median": float(ok.median()) if len(ok) else None,
                  "n_pos": pos, "n_neg": neg, "n_zero": int((ok == 0).sum()), "sign_test_p": p})
        rows.append(d)
    return pd.DataFrame(rows)


def theta_regression(frame: pd.DataFrame, side_features: list[str], *, col: str = "theta",
                     se: str = "hc1") -> tuple[pd.DataFrame, list[str]]:
    """OLS of theta on chosen-side and rejected-side features (one row per pair, HC1 SEs)."""
    return regress(frame, col, side_features, se=se, what="theta regression", target="theta")
