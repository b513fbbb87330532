"""Taking shipped rewards (:mod:`analysis.store.precomputed`) only after recomputing a sample of them.

Used by a study's score run and by :func:`analysis.scoring.rescore` (rewrites): the texts still to
score that the study's precomputed results hold are split off; the first time a model meets them in
this process a seeded sample of :data:`~analysis.store.precomputed.VERIFY_N` of them is scored for
real and compared; only when every one matches within the tolerance are the others taken. The sample's
own rewards are the recomputed ones."""

from __future__ import annotations

from typing import Callable

import pandas as pd

from analysis.store.precomputed import SCORE_TOL, Check, compare, verify_sample

RESULT = ["text_id", "reward", "truncated", "n_tokens"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"text_id": pd.Series(dtype=str), "reward": pd.Series(dtype=float),
                         "truncated": pd.Series(dtype=bool), "n_tokens": pd.Series(dtype="int64")})


def take_precomputed(study, model_id: str, what: str, todo: pd.DataFrame,
                     compute: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame, dict | None]:
    """-> (rows to store now: the recomputed sample and the verified shipped rewards; texts still to
    score; a record of what was taken and how it was checked, or None when nothing applied)."""
    pre = getattr(study, "precomputed", None)
    if pre is None or not len(todo):
        return _empty(), todo, None
    if pre.problem:
        chk = pre.checks.setdefault("*", Check("any model", False, 0, None, pre.problem))
        return _empty(), todo, chk.record(pre.source)
    hit = pre.scores(model_id, todo["text_id"])
    if not len(hit):
        return _empty(), todo, None
    computed = _empty()
    chk = pre.checks.get(model_id)
    if chk is None:
        ids = verify_sample(hit["text_id"])
        computed = compute(todo[todo["text_id"].isin(ids)])
        ok, worst, why = compare(computed[["text_id", "reward"]], hit[hit["text_id"].isin(ids)][["text_id", "reward"]],
                                 ["text_id"], SCORE_TOL)
        chk = pre.checks[model_id] = Check(what, ok, len(ids), worst, why)
    if not chk.ok:
        return computed, todo[~todo["text_id"].isin(set(computed["text_id"]))], chk.record(pre.source)
    taken = hit[~hit["text_id"].isin(set(computed["text_id"]))]
    chk.n_taken += len(taken)
    rows = pd.concat([computed[RESULT], taken[RESULT]], ignore_index=True) if len(computed) else taken[RESULT]
    rows = rows.astype({"reward": float, "truncated": bool})
    rest = todo[~todo["text_id"].isin(set(rows["text_id"]))]
    return rows, rest, {**chk.record(pre.source), "n_taken_here": int(len(taken))}


def precomputed_line(record: dict | None) -> str:
    """One line saying what a run took from precomputed results, or '' (nothing applied)."""
    if not record:
        return ""
    chk = Check(record["what"], bool(record["verified"]), int(record["n_checked"]), record["max_abs_diff"],
                record.get("reason") or "", int(record.get("n_taken_here", record.get("n_taken", 0))))
    return chk.line(record["source"])
