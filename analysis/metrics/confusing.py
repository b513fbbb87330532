"""Confusing entries (SEAL metric 8).

- same_target_labels: chosen and rejected carry identical target labels (every gamma feature equal);
  NULL when a label is missing.
- near_identical: identical texts, or last responses whose word sequences have a difflib
  ``SequenceMatcher`` ratio >= 0.95 (2 * matched words / total words, words split on whitespace,
  autojunk off; the cheap upper bounds ``real_quick_ratio`` and ``quick_ratio`` skip most pairs before
  the full comparison). On words rather than characters: about 10x faster on hh-rlhf, and a bag of
  characters bounds nothing (most English texts of similar length share 95 % of their letters).
- labeler_sides_with_rm: gamma = 'r' (the LM labeler prefers the rejected side) and the post-D RM
  also prefers the rejected side (agree_post = 0): labeler and RM agree against the human label.
- confusing: any of the three.
"""

from __future__ import annotations

from collections import Counter
from difflib import SequenceMatcher

import numpy as np
import pandas as pd

NEAR_IDENTICAL = 0.95
SIMILARITY_MEASURE = "difflib SequenceMatcher ratio of the last responses' words"


def response_similarity(a: str | None, b: str | None, threshold: float | None = None) -> float:
    """SequenceMatcher ratio of the word sequences in [0, 1]. With ``threshold``, returns a cheap upper bound when that
    bound is already below the threshold (enough to decide 'not near-identical')."""
    if a is None or b is None:
        return float("nan")
    if a == b:
        return 1.0
    wa, wb = a.split(), b.split()
    total = len(wa) + len(wb)
    if total == 0:
        return 1.0
    if threshold is not None:
        ub = 2 * min(len(wa), len(wb)) / total            # real_quick_ratio
        if ub < threshold:
            return ub
        ub = 2 * sum((Counter(wa) & Counter(wb)).values()) / total   # quick_ratio
        if ub < threshold:
            return ub
    return SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def near_identical(chosen: pd.Series, rejected: pd.Series, identical=None,
                   threshold: float = NEAR_IDENTICAL) -> pd.Series:
    c = list(chosen)
    r = list(rejected)
    out = np.array([response_similarity(x, y, threshold) >= threshold for x, y in zip(c, r)], dtype=bool)
    if identical is not None:
        out |= pd.Series(identical).fillna(False).astype(bool).to_numpy()
    return pd.Series(out)


def same_labels(chosen: pd.DataFrame, rejected: pd.DataFrame, columns: list[str]) -> pd.Series:
    """True when every column is equal on both sides; <NA> when any label is missing."""
    if not columns:
        return pd.Series(pd.NA, index=range(len(chosen)), dtype="boolean")
    c = chosen[columns].to_numpy(float)
    r = rejected[columns].to_numpy(float)
    eq = (c == r).all(axis=1)
    out = pd.Series(eq, dtype="boolean")
    out[np.isnan(c).any(axis=1) | np.isnan(r).any(axis=1)] = pd.NA
    return out


def confusing(frame: pd.DataFrame, *, threshold: float = NEAR_IDENTICAL) -> pd.DataFrame:
    """Flags per pair from a frame with chosen_response, rejected_response, identical, gamma,
    agree_post and same_target_labels. Returns the four boolean columns (aligned to ``frame``)."""
    n = len(frame)
    near = near_identical(frame["chosen_response"], frame["rejected_response"],
                          frame.get("identical"), threshold)
    g = frame["gamma"] if "gamma" in frame.columns else pd.Series([None] * n)
    a = pd.Series(frame["agree_post"] if "agree_post" in frame.columns else [pd.NA] * n, dtype="Int64")
    g = pd.Series(g.to_numpy(), dtype=object)
    lab = pd.Series(pd.NA, index=range(n), dtype="boolean")
    known = g.notna().to_numpy() & a.notna().to_numpy()
    lab[known] = ((g.to_numpy() == "r") & (a.fillna(-1).to_numpy() == 0))[known]
    same = pd.Series(frame["same_target_labels"].to_numpy() if "same_target_labels" in frame.columns
                     else [pd.NA] * n, dtype="boolean")
    conf = (same.fillna(False).to_numpy() | near.to_numpy() | lab.fillna(False).to_numpy())
    out = pd.DataFrame({"same_target_labels": same.to_numpy(), "near_identical": near.to_numpy(),
                        "labeler_sides_with_rm": lab.to_numpy(), "confusing": conf}, index=frame.index)
    out["same_target_labels"] = out["same_target_labels"].astype("boolean")
    out["labeler_sides_with_rm"] = out["labeler_sides_with_rm"].astype("boolean")
    return out
