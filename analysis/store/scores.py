"""Writes and reads of reward models, their runs and their scores.

``models``: one row per model run (model_id = hash of source, revision/fingerprint, format,
max_length, dtype). ``scores``: one reward per (model_id, text_id); inserts skip existing keys, so a
chunk written twice (a rerun after a kill) adds nothing. ``score_runs``: one row per ``score`` call;
``finished_at`` stays NULL for a run that was killed.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.store import jobs
from analysis.store.core import Study, now

_MODEL_COLS = [
    "model_id", "name", "path_or_hub_id", "revision", "role", "format", "dtype", "device", "max_length",
    "padding_side", "truncation_side", "token_budget", "trust_remote_code", "settings", "created_at",
]
_ROLE_ORDER = "CASE role WHEN 'pre' THEN 0 WHEN 'post' THEN 1 ELSE 2 END"


def register_model(study: Study, record: dict[str, Any], role: str) -> list[str]:
    """Insert or update a model run. A 'pre' or 'post' role moves any other model holding that role
    to 'other'; returns the ids of the models so moved."""
    rec = dict(record)
    rec["role"] = role
    rec["settings"] = json.dumps(rec.get("settings") or {}, sort_keys=True, default=str)
    rec["created_at"] = now()
    demoted: list[str] = []
    with study.transaction() as cur:
        if role in ("pre", "post"):
            demoted = [r[0] for r in cur.execute(
                "SELECT model_id FROM models WHERE role = ? AND model_id <> ?", [role, rec["model_id"]]
            ).fetchall()]
            cur.execute("UPDATE models SET role = 'other' WHERE role = ? AND model_id <> ?",
                        [role, rec["model_id"]])
        exists = cur.execute("SELECT count(*) FROM models WHERE model_id = ?", [rec["model_id"]]).fetchone()[0]
        if exists:
            cur.execute(
                "UPDATE models SET name = ?, role = ?, device = ?, token_budget = ?, settings = ? "
                "WHERE model_id = ?",
                [rec["name"], role, rec["device"], rec["token_budget"], rec["settings"], rec["model_id"]],
            )
        else:
            cur.execute(f"INSERT INTO models ({', '.join(_MODEL_COLS)}) VALUES ({', '.join('?' * len(_MODEL_COLS))})",
                        [rec.get(c) for c in _MODEL_COLS])
    return demoted


#: the two orders the study's RMs are listed in: by role (pre, post, then the others as registered:
#: what the app, the export and the scorer list), and as registered (oldest first: the last model of
#: a role is its current one)
MODEL_ORDERS = {"role": f"{_ROLE_ORDER}, created_at, model_id", "registered": "created_at NULLS FIRST, model_id"}


def models_frame(study: Study, order: str = "role") -> pd.DataFrame:
    """Every column of the ``models`` table, one row per RM, in one of :data:`MODEL_ORDERS`."""
    return study.df(f"SELECT {', '.join(_MODEL_COLS)} FROM models ORDER BY {MODEL_ORDERS[order]}")


def n_texts(study: Study) -> int:
    return int(study.scalar("SELECT count(DISTINCT text_id) FROM texts"))


def pending_texts(study: Study, model_id: str) -> pd.DataFrame:
    """Texts of the study's pairs that have no score from ``model_id``, in text_id order."""
    return study.df(
        "SELECT text_id, any_value(context) AS context, any_value(response) AS response, "
        "any_value(text) AS text FROM texts t "
        "WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.model_id = ? AND s.text_id = t.text_id) "
        "GROUP BY text_id ORDER BY text_id",
        [model_id],
    )


def random_study_texts(study: Study, n: int, seed: int = 0) -> pd.DataFrame:
    """A reproducible random sample of ``n`` distinct texts of the study (``analysis.scoring.sample_texts``
    reads texts from files, for benchmarks)."""
    return study.df(
        "SELECT text_id, any_value(context) AS context, any_value(response) AS response, "
        "any_value(text) AS text FROM texts GROUP BY text_id "
        "ORDER BY hash(text_id || ?) LIMIT ?",
        [str(seed), int(n)],
    )



def add_scores(study: Study, model_id: str, frame: pd.DataFrame) -> int:
    """Insert rewards (DataFrame[text_id, reward, truncated, n_tokens]) in one transaction; rows
    already present for (model_id, text_id) are skipped. Returns how many were new."""
    if frame is None or not len(frame):
        return 0
    df = pd.DataFrame({
        "model_id": model_id,
        "text_id": frame["text_id"].astype(str).to_numpy(),
        "reward": frame["reward"].astype(float).to_numpy(),
        "truncated": frame["truncated"].astype(bool).to_numpy() if "truncated" in frame else False,
        "n_tokens": frame["n_tokens"].astype("int64").to_numpy() if "n_tokens" in frame else None,
    }).drop_duplicates("text_id")
    with study.transaction() as cur:
        cur.register("_new_scores", df)
        before = cur.execute("SELECT count(*) FROM scores WHERE model_id = ?", [model_id]).fetchall()[0][0]
        cur.execute(
            "INSERT INTO scores (model_id, text_id, reward, truncated, n_tokens) "
            "SELECT n.model_id, n.text_id, n.reward, n.truncated, n.n_tokens FROM _new_scores n "
            "ANTI JOIN scores s ON s.model_id = n.model_id AND s.text_id = n.text_id"
        )
        after = cur.execute("SELECT count(*) FROM scores WHERE model_id = ?", [model_id]).fetchall()[0][0]
        cur.unregister("_new_scores")
    return int(after - before)


def get_scores(study: Study, model_id: str | None = None, text_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """DataFrame[model_id, text_id, reward, truncated, n_tokens], optionally for one model / some texts."""
    where, params = [], []
    if model_id is not None:
        where.append("s.model_id = ?")
        params.append(model_id)
    sql = "SELECT s.model_id, s.text_id, s.reward, s.truncated, s.n_tokens FROM scores s"
    cur = study.cursor()
    try:
        if text_ids is not None:
            cur.register("_ids", pd.DataFrame({"text_id": pd.Series(list(text_ids), dtype=str)}))
            sql += " SEMI JOIN _ids i ON i.text_id = s.text_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return cur.execute(sql + " ORDER BY s.model_id, s.text_id", params).df()
    finally:
        cur.close()


class RunHeldError(RmtuiError):
    """Another process is scoring the same model in this study (issue 25): this one stops before any
    work instead of redoing it and discarding the result."""

    title = "Model is being scored"


def start_run(study: Study, run_id: str, model_id: str, device: str, settings: dict, *,
              name: str | None = None, max_length: int | None = None) -> None:
    """Open a run; refused (:class:`RunHeldError`, nothing written) while another live process runs
    one of the same model in this study. The check and the insert are one transaction, and DuckDB
    lets one process write at a time, so two starting together cannot both pass."""
    with study.transaction() as cur:
        held = jobs.live_score_run(cur, model_id)
        if held is not None:
            rid, who, started = held
            when = f" since {started:%Y-%m-%d %H:%M:%S} UTC" if started is not None else ""
            raise RunHeldError(
                f"{study.path}: process {who.get('pid')} on {who.get('host')} is scoring {name or model_id} "
                f"(run {rid}{when}); its results go into this study as it commits them. Wait for it to "
                "finish (rmtui summary lists unfinished runs), then rerun this command to score what is left, "
                "or stop that process")
        cur.execute(
            "INSERT INTO score_runs (run_id, model_id, started_at, n_scored, n_skipped, n_truncated, device, settings, "
            "max_length) VALUES (?, ?, ?, 0, 0, 0, ?, ?, ?)",
            [run_id, model_id, now(), device, json.dumps(settings, sort_keys=True, default=str),
             None if max_length is None else int(max_length)],
        )
        jobs.register(cur, "score", run_id)


RUN_STATUSES = ("done", "failed", "interrupted")


def finish_run(study: Study, run_id: str, n_scored: int, n_skipped: int, n_truncated: int,
               texts_per_s: float, settings: dict, *, status: str = "done", reason: str | None = None) -> None:
    """Close a run: ``done`` only when every pending text got a finite score; ``failed`` (``reason``
    says why) or ``interrupted`` otherwise (its committed chunks are kept; a rerun resumes)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r}")
    with study.transaction() as cur:
        cur.execute(
            "UPDATE score_runs SET finished_at = ?, n_scored = ?, n_skipped = ?, n_truncated = ?, "
            "texts_per_s = ?, settings = ?, status = ?, reason = ?, truncated_share = ? WHERE run_id = ?",
            [now(), n_scored, n_skipped, n_truncated, texts_per_s,
             json.dumps(settings, sort_keys=True, default=str), status, reason,
             (n_truncated / n_scored) if n_scored else None, run_id],
        )
        jobs.unregister(cur, "score", run_id)


def runs_frame(study: Study) -> pd.DataFrame:
    return study.df("SELECT * FROM score_runs ORDER BY started_at")


def truncation(study: Study) -> pd.DataFrame:
    """Per model (registration order): how many of the texts it scored were cut at its maximum length.
    Columns model_id, name, role, max_length, n_scored, n_truncated, share (n_truncated / n_scored, over
    every run of the model: the scores table), runs, last_run_truncated, last_run_scored (the latest run
    that scored anything, from score_runs)."""
    return study.df(
        """
        SELECT m.model_id, m.name, m.role, coalesce(r.max_length, m.max_length) AS max_length,
               count(s.text_id) AS n_scored, count(s.text_id) FILTER (WHERE s.truncated) AS n_truncated,
               CASE WHEN count(s.text_id) > 0
                    THEN (count(s.text_id) FILTER (WHERE s.truncated))::DOUBLE / count(s.text_id) END AS share,
               any_value(r.runs) AS runs, any_value(r.n_truncated) AS last_run_truncated,
               any_value(r.n_scored) AS last_run_scored
        FROM models m
        LEFT JOIN scores s ON s.model_id = m.model_id
        LEFT JOIN (SELECT model_id, count(*) OVER (PARTITION BY model_id) AS runs, n_truncated, n_scored, max_length,
                          row_number() OVER (PARTITION BY model_id ORDER BY (n_scored > 0) DESC, started_at DESC) AS k
                   FROM score_runs) r ON r.model_id = m.model_id AND r.k = 1
        GROUP BY m.model_id, m.name, m.role, r.max_length, m.max_length, m.created_at
        ORDER BY m.created_at NULLS FIRST, m.model_id
        """)
