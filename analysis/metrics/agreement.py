"""Agreement of an RM with the human labels (SEAL metric 1).

delta = 1 when r(chosen) > r(rejected) by more than ``tol``, 0 when it is lower by more than ``tol``,
and a *tie* otherwise (default ``tol = 0``: exact equality). Identical texts are ties whatever the
rewards say. A pair the RM has not scored on both sides is *unscored*. Ties and unscored pairs are
counted apart: ``agreement`` is agree / (agree + disagree + tie), i.e. a tie is not an agreement
(delta = 1 needs a strict win), and ``agreement_decided`` is agree / (agree + disagree).
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
    return {
        "n": n, "scored": scored, "agree": n_agree, "disagree": n_dis, "tie": n_tie, "unscored": unscored,
        "agreement": n_agree / scored if scored else None,
        "agreement_decided": n_agree / (n_agree + n_dis) if (n_agree + n_dis) else None,
        "tie_share": n_tie / scored if scored else None,
    }


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
