"""Suspected label errors: a per-pair score of how strongly the study's evidence says the human label
(chosen over rejected) is wrong.

score = E_rm + 0.5 * E_labeler (+ E_votes where the dataset has annotator votes), where

- E_rm = - mean over the RMs with a margin of z = margin / SD(margin over the study's decided pairs):
  both RMs confidently preferring the rejected side pushes the score up; in SD units so RMs with
  different reward scales weigh the same;
- E_labeler = +1 when the target labeler prefers the rejected side (gamma r), -1 when it prefers the
  chosen side (c), 0 when indifferent or unlabelled;
- E_votes = 2 * (0.5 - share of annotators who chose the chosen side), when a ``vote_share`` column is
  present (0 otherwise).

Higher = more suspect. Ties and unscored margins contribute nothing (the mean is over the RMs that
decided). The score ranks; it is not a probability.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABELER_WEIGHT = 0.5
GAMMA_EVIDENCE = {"r": 1.0, "c": -1.0, "i": 0.0}


def suspect_scores(pm: pd.DataFrame, roles=("pre", "post"), *, labeler_weight: float = LABELER_WEIGHT,
                   sd: dict[str, float] | None = None) -> np.ndarray:
    """The score of each row of ``pm`` (margin_ROLE columns, optional gamma and vote_share).

    ``sd``: the margin SD per role (default: computed on ``pm``'s own margins), so a subset can be
    scored on the study's scale.
    """
    zs = []
    for role in roles:
        col = f"margin_{role}"
        if col not in pm.columns:
            continue
        m = pm[col].astype(float)
        s = (sd or {}).get(role)
        if s is None:
            s = float(m[m != 0].std(ddof=1)) if (m.notna() & (m != 0)).sum() > 1 else float("nan")
        if not np.isfinite(s) or s <= 0:
            continue
        z = (m / s).where(m != 0)
        zs.append(z.to_numpy())
    if zs:
        Z = np.vstack(zs)
        k = (~np.isnan(Z)).sum(axis=0)
        e_rm = -np.where(k > 0, np.nansum(Z, axis=0) / np.maximum(k, 1), 0.0)
    else:
        e_rm = np.zeros(len(pm))
    e_lab = pm["gamma"].map(GAMMA_EVIDENCE).fillna(0.0).to_numpy(float) if "gamma" in pm.columns else 0.0
    e_votes = (2 * (0.5 - pm["vote_share"].astype(float))).fillna(0.0).to_numpy() if "vote_share" in pm.columns else 0.0
    return e_rm + labeler_weight * e_lab + e_votes


def precision_at_k(scores: np.ndarray, truth: np.ndarray, ks) -> dict[int, float]:
    """Share of true positives among the ``k`` highest scores (ties broken by position)."""
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    t = np.asarray(truth, bool)[order]
    return {int(k): float(t[:k].mean()) for k in ks if 0 < k <= len(t)}


def flip_labels(pm: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    """``pm`` with the human label of rows ``idx`` swapped: margins negate, gamma c <-> r, the vote
    share becomes 1 - share (the rewards of each text stay: an RM scores a text, not a label)."""
    out = pm.copy()
    rows = out.index[idx]
    for c in [c for c in out.columns if c.startswith("margin_")]:
        out.loc[rows, c] = -out.loc[rows, c].astype(float)
    if "gamma" in out.columns:
        out.loc[rows, "gamma"] = out.loc[rows, "gamma"].map({"c": "r", "r": "c", "i": "i"})
    if "vote_share" in out.columns:
        out.loc[rows, "vote_share"] = 1 - out.loc[rows, "vote_share"].astype(float)
    return out
