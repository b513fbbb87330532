"""Reads and writes of rewrites, robustness fits and the sensitivity table.

Also the few reads the rewrite experiment needs from other areas (pairs, models, scores, features):
plain SELECTs, never writes to tables other modules own.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

import pandas as pd

from analysis.store.core import Study, conform, insert_frame, now
from analysis.store.scores import models_frame

REWRITE_COLUMNS = [
    "rewrite_id", "pair_id", "side", "rewriter", "params", "original_text_id", "new_text_id",
    "new_context", "new_response", "new_text", "similarity", "experiment", "kept", "created_at",
    "perturbation", "meaning_changed", "notes",
]


def _with_ids(study: Study, sql: str, ids: Iterable[str], params: list | None = None,
              col: str = "id") -> pd.DataFrame:
    cur = study.cursor()
    try:
        cur.register("_ids", pd.DataFrame({col: pd.Series(list(dict.fromkeys(ids)), dtype="object")}))
        return cur.execute(sql, params or []).df()
    finally:
        cur.close()


# -- reads of other areas --------------------------------------------------------------------------

def models(study: Study) -> pd.DataFrame:
    """``model_id, name, role`` of every RM of the study (created order)."""
    return models_frame(study, "registered")[["model_id", "name", "role"]]


def candidate_pairs(study: Study, model_ids: Sequence[str]) -> pd.DataFrame:
    """Pairs that can be rewritten in an experiment: not identical, and both sides scored by every
    model in ``model_ids``. Sorted by pair_id (the sampling frame)."""
    cols = ("p.pair_id, p.context, coalesce(p.rejected_context, p.context) AS rejected_context, "
            "p.chosen_response, p.rejected_response, p.chosen_text_id, p.rejected_text_id")
    if not model_ids:
        return study.df(f"SELECT {cols} FROM pairs p WHERE 0 = 1")
    return _with_ids(study, f"""
        WITH m AS (SELECT id AS model_id FROM _ids),
        ok AS (SELECT s.text_id FROM scores s JOIN m USING (model_id) WHERE s.reward IS NOT NULL
               GROUP BY s.text_id HAVING count(DISTINCT s.model_id) = (SELECT count(*) FROM m))
        SELECT {cols} FROM pairs p
        WHERE NOT coalesce(p.identical, FALSE)
          AND p.chosen_text_id IN (SELECT text_id FROM ok) AND p.rejected_text_id IN (SELECT text_id FROM ok)
        ORDER BY p.pair_id""", model_ids)


def get_pair(study: Study, pair_id: str) -> dict | None:
    df = study.df(
        "SELECT pair_id, context, coalesce(rejected_context, context) AS rejected_context, chosen_response, "
        "rejected_response, chosen_text_id, rejected_text_id FROM pairs WHERE pair_id = ?", [pair_id])
    return None if df.empty else df.iloc[0].to_dict()


def scores_for(study: Study, text_ids: Iterable[str]) -> pd.DataFrame:
    """``model_id, role, text_id, reward`` for the given texts (every model of the study)."""
    return _with_ids(study, "SELECT s.model_id, m.role, s.text_id, s.reward FROM scores s "
                            "JOIN models m USING (model_id) WHERE s.text_id IN (SELECT id FROM _ids)",
                     text_ids)


def features_for(study: Study, text_ids: Iterable[str]) -> pd.DataFrame:
    """Long ``text_id, feature ("featurizer.name"), value, kind`` for the given texts."""
    return _with_ids(study, """
        SELECT f.text_id, f.featurizer || '.' || f.name AS feature, f.value, d.kind
        FROM features f LEFT JOIN feature_defs d USING (featurizer, name)
        WHERE f.text_id IN (SELECT id FROM _ids)""", text_ids)


# -- rewrites ----------------------------------------------------------------------------------------

def existing_rewrite_ids(study: Study, ids: Iterable[str]) -> set[str]:
    df = _with_ids(study, "SELECT rewrite_id FROM rewrites WHERE rewrite_id IN (SELECT id FROM _ids)", ids)
    return set(df["rewrite_id"])


def add_rewrites(study: Study, rows: pd.DataFrame) -> int:
    """Insert (or replace, by rewrite_id) rewrites; returns how many rows were written."""
    if rows is None or len(rows) == 0:
        return 0
    df = rows.copy()
    if "created_at" not in df:
        df["created_at"] = now()
    for c in REWRITE_COLUMNS:
        if c not in df:
            df[c] = None
    df = df[REWRITE_COLUMNS].drop_duplicates("rewrite_id", keep="last")
    with study.transaction() as cur:
        cur.register("_rw", df)
        cur.execute("DELETE FROM rewrites WHERE rewrite_id IN (SELECT rewrite_id FROM _rw)")
        cur.execute(f"INSERT INTO rewrites ({', '.join(REWRITE_COLUMNS)}) SELECT {', '.join(REWRITE_COLUMNS)} FROM _rw")
        cur.unregister("_rw")
    return len(df)


def delete_rewrite(study: Study, rewrite_id: str) -> bool:
    with study.transaction() as cur:
        n = cur.execute("SELECT count(*) FROM rewrites WHERE rewrite_id = ?", [rewrite_id]).fetchone()[0]
        cur.execute("DELETE FROM rewrites WHERE rewrite_id = ?", [rewrite_id])
    return bool(n)


def get_rewrite(study: Study, rewrite_id: str) -> dict | None:
    df = study.df("SELECT * FROM rewrites WHERE rewrite_id = ?", [rewrite_id])
    return None if df.empty else df.iloc[0].to_dict()


def rewrites(study: Study, *, experiment: str | None = None, pair_id: str | None = None,
             kept_only: bool = True) -> pd.DataFrame:
    """Rewrites with the untouched side's text id (``other_text_id``), oldest first."""
    where, params = [], []
    if experiment is not None:
        where.append("r.experiment = ?")
        params.append(experiment)
    if pair_id is not None:
        where.append("r.pair_id = ?")
        params.append(pair_id)
    if kept_only:
        where.append("coalesce(r.kept, TRUE)")
    sql = ("SELECT r.*, CASE WHEN r.side = 'chosen' THEN p.rejected_text_id ELSE p.chosen_text_id END "
           "AS other_text_id FROM rewrites r JOIN pairs p USING (pair_id)")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return study.df(sql + " ORDER BY r.created_at, r.rewrite_id", params)


def experiments(study: Study) -> pd.DataFrame:
    return study.df(
        "SELECT experiment, any_value(rewriter) AS rewriter, count(*) AS n, "
        "count(*) FILTER (WHERE new_text_id = original_text_id) AS unchanged, "
        "avg(similarity) AS mean_similarity, count(*) FILTER (WHERE meaning_changed) AS meaning_changed, "
        "min(created_at) AS started, max(created_at) AS last "
        "FROM rewrites GROUP BY experiment ORDER BY started")


# -- robustness fits --------------------------------------------------------------------------------

ROBUSTNESS_COLUMNS = ["fit_id", "outcome", "term", "estimate", "se", "ci_low", "ci_high", "p", "n", "se_type",
                      "variant", "events", "n_flip", "events_flip", "p_exact", "p_bonferroni", "p_bh", "p_method",
                      "ci_method", "status"]
EXPERIMENT_COLUMNS = ["experiment", "rewriter", "params", "seed", "n_requested", "n_sampled", "sides",
                      "n_candidates", "frame", "similarity_threshold", "created_at"]
SENSITIVITY_COLUMNS = ["fit_id", "perturbation", "side", "model_id", "role", "mean_change", "ci_low",
                       "ci_high", "n"]


def write_robustness_fit(study: Study, fit_id: str, *, options: dict, pre_model_id: str | None,
                         post_model_id: str | None, n: int, robustness: pd.DataFrame,
                         sensitivity: pd.DataFrame, messages: list[str], se_type: str = "HC1") -> None:
    """Replace fit ``fit_id`` (kind ``robustness``) and its rows in ``robustness`` and ``sensitivity``."""
    rob = conform(robustness, ROBUSTNESS_COLUMNS, fit_id=fit_id)
    sens = conform(sensitivity, SENSITIVITY_COLUMNS, fit_id=fit_id)
    with study.transaction() as cur:
        for t in ("fits", "robustness", "sensitivity"):
            cur.execute(f"DELETE FROM {t} WHERE fit_id = ?", [fit_id])
        cur.execute(
            "INSERT INTO fits (fit_id, kind, created_at, options, pre_model_id, post_model_id, se_type, n, messages) "
            "VALUES (?, 'robustness', ?, ?, ?, ?, ?, ?, ?)",
            [fit_id, now(), json.dumps(options, sort_keys=True, default=str), pre_model_id, post_model_id,
             se_type, int(n), json.dumps(messages)])
        insert_frame(cur, "robustness", rob, ROBUSTNESS_COLUMNS)
        insert_frame(cur, "sensitivity", sens, SENSITIVITY_COLUMNS)


def write_experiment(study: Study, row: dict) -> None:
    """Record (or update) the design of a rewrite experiment: seed, n, sides, sampling frame."""
    df = conform(pd.DataFrame([row]), EXPERIMENT_COLUMNS)
    with study.transaction() as cur:
        cur.execute("DELETE FROM rewrite_experiments WHERE experiment = ?", [row["experiment"]])
        insert_frame(cur, "rewrite_experiments", df, EXPERIMENT_COLUMNS)


def experiment_designs(study: Study) -> pd.DataFrame:
    return study.df("SELECT * FROM rewrite_experiments ORDER BY created_at")


def latest_rewrite_time(study: Study):
    return study.scalar("SELECT max(created_at) FROM rewrites WHERE coalesce(kept, TRUE)")


def latest_robustness_fit(study: Study) -> dict | None:
    df = study.df("SELECT * FROM fits WHERE kind = 'robustness' ORDER BY created_at DESC LIMIT 1")
    return None if df.empty else df.iloc[0].to_dict()


def robustness_rows(study: Study, fit_id: str) -> pd.DataFrame:
    return study.df("SELECT * FROM robustness WHERE fit_id = ? ORDER BY outcome, term", [fit_id])


def sensitivity_rows(study: Study, fit_id: str) -> pd.DataFrame:
    return study.df("SELECT * FROM sensitivity WHERE fit_id = ? ORDER BY perturbation, side, role", [fit_id])
