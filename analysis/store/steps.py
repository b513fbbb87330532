"""The ``steps`` table of ``rmtui run``: which step ran with which fingerprint of its inputs.

Also the cheap reads the pipeline uses to fingerprint a study's content (the set of texts) and to
check that a step's results are still in the study.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analysis.store.core import Study, now


def get_step(study: Study, step: str) -> dict[str, Any] | None:
    row = study.df("SELECT * FROM steps WHERE step = ?", [step])
    if row.empty:
        return None
    r = row.iloc[0].to_dict()
    try:
        r["summary"] = json.loads(r["summary"]) if r["summary"] else {}
    except (TypeError, ValueError):
        r["summary"] = {}
    return r


def record_step(study: Study, step: str, fingerprint: str, seconds: float, summary: dict[str, Any]) -> None:
    with study.transaction() as cur:
        cur.execute(
            "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?)",
            [step, fingerprint, now(), float(seconds), json.dumps(summary, sort_keys=True, default=str)],
        )


def forget_steps(study: Study, steps: list[str] | None = None) -> None:
    """Drop step records (all, or the named ones) so the next run redoes them."""
    with study.transaction() as cur:
        if steps is None:
            cur.execute("DELETE FROM steps")
        else:
            cur.executemany("DELETE FROM steps WHERE step = ?", [[s] for s in steps])


def list_steps(study: Study) -> pd.DataFrame:
    return study.df("SELECT step, fingerprint, finished_at, seconds, summary FROM steps ORDER BY finished_at")


def text_set(study: Study) -> tuple[int, str]:
    """(number of distinct texts of the study's pairs, a hash of their ids)."""
    row = study.con.cursor().execute(
        "SELECT count(*), coalesce(md5(string_agg(text_id, ',' ORDER BY text_id)), '') "
        "FROM (SELECT DISTINCT text_id FROM texts)"
    ).fetchone()
    return int(row[0]), str(row[1])


def pair_set(study: Study) -> tuple[int, str]:
    """(number of pairs, a hash of their ids)."""
    row = study.con.cursor().execute(
        "SELECT count(*), coalesce(md5(string_agg(pair_id, ',' ORDER BY pair_id)), '') FROM pairs"
    ).fetchone()
    return int(row[0]), str(row[1])


def feature_state(study: Study) -> tuple[int, int]:
    """(feature values, label failures) of the pairs' texts: changes when a rerun labels texts that
    failed before, not when a rewrite experiment featurizes its new texts."""
    row = study.con.cursor().execute(
        "WITH t AS (SELECT chosen_text_id AS text_id FROM pairs UNION SELECT rejected_text_id FROM pairs) "
        "SELECT (SELECT count(*) FROM features WHERE text_id IN (SELECT text_id FROM t)), "
        "(SELECT count(*) FROM label_failures WHERE text_id IN (SELECT text_id FROM t))").fetchone()
    return int(row[0]), int(row[1])


def heldout_state(study: Study) -> str:
    """A hash of which pairs are marked held out (TRUE / FALSE / NULL)."""
    row = study.con.cursor().execute(
        "SELECT coalesce(md5(string_agg(pair_id || ':' || coalesce(CAST(heldout AS VARCHAR), 'null'), ',' "
        "ORDER BY pair_id)), '') FROM pairs"
    ).fetchone()
    return str(row[0])


def unscored_texts(study: Study, model_id: str) -> int:
    """How many distinct texts of the study's pairs have no score from ``model_id``."""
    return int(study.scalar(
        "SELECT count(*) FROM (SELECT DISTINCT text_id FROM texts) t "
        "WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.model_id = ? AND s.text_id = t.text_id)",
        [model_id],
    ))


def has_fit(study: Study, fit_id: str | None = None) -> bool:
    if fit_id:
        return bool(study.scalar("SELECT count(*) FROM fits WHERE fit_id = ?", [fit_id]))
    return bool(study.scalar("SELECT count(*) FROM fits"))


def table_count(study: Study, table: str) -> int:
    if not table.replace("_", "").isalnum():
        raise ValueError(table)
    return int(study.scalar(f'SELECT count(*) FROM "{table}"'))
