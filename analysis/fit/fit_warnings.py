"""Library warnings met during a fit, captured and named (:class:`FitWarnings`: which analysis, which model,
which terms came out degenerate), and the human-label helpers of the fit (human ties left out, vote
covariates). Moved out of ``study_fit``.
"""

from __future__ import annotations

import contextlib
import numpy as np
import pandas as pd
from analysis.store import Study


class FitWarnings:
    """Library warnings (numpy RuntimeWarnings, statsmodels convergence/separation ...) met during a fit
    (issue 25): captured per analysis instead of printed as multi-line dumps; each becomes one line
    saying what was degenerate (the analysis, the model or target, the terms whose estimate or
    standard error came out non-finite) and a ``fit_warnings`` row."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._last: list[dict] = []

    @contextlib.contextmanager
    def capture(self, analysis: str, targets: list[str]):
        import warnings as _w

        with _w.catch_warnings(record=True) as caught:
            _w.simplefilter("always")
            yield
        agg: dict[tuple[str, str], int] = {}
        for w in caught:
            text = " ".join(str(w.message).split())[:200]
            agg[(w.category.__name__, text)] = agg.get((w.category.__name__, text), 0) + 1
        self._last = [{"analysis": analysis, "target": "/".join(map(str, targets)) or None, "term": None,
                       "category": c, "message": m, "n": n} for (c, m), n in agg.items()]
        self.rows += self._last

    def terms_of(self, table: pd.DataFrame, term_col: str) -> None:
        """Name the degenerate terms of the analysis just captured: rows of its result whose estimate
        or standard error is not finite (per target where the table has one)."""
        if not self._last or table is None or not len(table) or term_col not in table.columns:
            return
        est = pd.to_numeric(table.get("estimate"), errors="coerce") if "estimate" in table else None
        se = pd.to_numeric(table.get("se"), errors="coerce") if "se" in table else None
        bad = pd.Series(False, index=table.index)
        for col in (est, se):
            if col is not None:
                bad |= ~np.isfinite(col.astype(float).fillna(np.nan).to_numpy())
        if not bad.any():
            return
        sub = table[bad]
        by = "target" if "target" in sub.columns else None
        terms = {}
        for _, r in sub.iterrows():
            terms.setdefault(str(r[by]) if by else None, []).append(str(r[term_col]))
        named = "; ".join((f"{t}: " if t else "") + ", ".join(dict.fromkeys(v)) for t, v in terms.items())
        for row in self._last:
            row["term"] = named

    def lines(self) -> list[str]:
        from analysis.textsafe import visible_line

        out = []
        for r in self.rows:
            what = f"{r['analysis']} ({r['target']})" if r["target"] else r["analysis"]
            terms = f"; degenerate terms: {r['term']}" if r["term"] else ""
            if not r["term"] and r["analysis"] in ("agreement_and_baselines", "summary") and (
                    "separation" in r["message"].lower() or "converge" in r["message"].lower()):
                terms = "; degenerate: the length-only logit baseline (length alone separates chosen from rejected)"
            times = f" x{r['n']}" if r["n"] > 1 else ""
            out.append(visible_line(f"warning in {what}: {r['category']}{times}: {r['message']}{terms}"))
        return out

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["analysis", "target", "term", "category", "message", "n"])


def _without_human_ties(study: Study, pf: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Pairs the humans called a tie (pairs.human_tie) have no winner to agree with: out of the fit."""
    from analysis.store.pairs import human_tie_ids

    ties = human_tie_ids(study)
    if not ties:
        return pf, 0
    keep = ~pf["pair_id"].isin(ties)
    return pf[keep].reset_index(drop=True), int((~keep).sum())


def _human_covariates(study: Study, pmx: pd.DataFrame, msgs: list[str]) -> list[str]:
    """``annotator_agreement`` as a drivers covariate when every pair of the fit has votes and they vary
    (several annotators): does the post-D RM part ways with the humans more where the humans split?"""
    from analysis.store.pairs import human_labels

    hl = human_labels(study)
    if not len(hl) or hl["annotator_agreement"].isna().all():
        return []
    agr = pmx["pair_id"].map(dict(zip(hl["pair_id"], hl["annotator_agreement"])))
    if agr.isna().any() or agr.nunique() < 2:
        return []
    pmx["annotator_agreement"] = agr.astype(float).to_numpy()
    msgs.append("drivers: annotator_agreement (share of votes for the pair's preference) is a covariate")
    return ["annotator_agreement"]


# -- summary -----------------------------------------------------------------------------------------
