"""Taking shipped feature values (:mod:`analysis.store.precomputed`) only after recomputing a sample.

For offline featurizers (deterministic: heuristics, the proxy labeler): the texts still to featurize
that the study's precomputed results hold for this featurizer, version and config are split off; the
first time in this process a seeded sample of them is featurized for real and compared value by value
(binary values must be equal); only when all match are the others taken. LLM labelers never are."""

from __future__ import annotations

import pandas as pd

from analysis.store.precomputed import FEATURE_TOL, Check, compare, verify_sample


def take_precomputed_features(study, fz, todo: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """-> (long values to store now: the recomputed sample and the verified shipped values; texts
    still to featurize; one line saying what was taken and how it was checked, or '')."""
    pre = getattr(study, "precomputed", None)
    empty = pd.DataFrame(columns=["text_id", "name", "value"])
    if pre is None or not len(todo) or not getattr(fz, "offline", False) or fz.name.startswith("llm"):
        return empty, todo, ""
    if pre.problem:
        chk = pre.checks.setdefault("*", Check("any featurizer", False, 0, None, pre.problem))
        return empty, todo, chk.line(pre.source)
    config = fz.config()
    hit = pre.features(fz.name, fz.version, config, todo["text_id"])
    if not len(hit):
        return empty, todo, ""
    key = f"featurizer:{fz.name}"
    computed = empty
    chk = pre.checks.get(key)
    if chk is None:
        ids = verify_sample(hit["text_id"])
        parts = [c.values for c in fz.featurize_iter(todo[todo["text_id"].isin(ids)])]
        computed = pd.concat(parts, ignore_index=True) if parts else empty
        ok, worst, why = compare(computed[["text_id", "name", "value"]], hit[hit["text_id"].isin(ids)],
                                 ["text_id", "name"], FEATURE_TOL)
        chk = pre.checks[key] = Check(f"featurizer {fz.name}", ok, len(ids), worst, why)
    if not chk.ok:
        return computed, todo[~todo["text_id"].isin(set(computed["text_id"]))], chk.line(pre.source)
    taken = hit[~hit["text_id"].isin(set(computed["text_id"]))]
    n_taken = taken["text_id"].nunique()
    chk.n_taken += n_taken
    rows = pd.concat([computed, taken], ignore_index=True) if len(computed) else taken
    rest = todo[~todo["text_id"].isin(set(rows["text_id"]))]
    line = Check(chk.what, True, chk.n_checked, chk.max_abs_diff, "", n_taken).line(pre.source)
    return rows, rest, line.replace(" values of ", " texts' values of ", 1)
