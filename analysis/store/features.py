"""Reads and writes of featurizers, feature definitions, feature values, label failures and LLM calls.

Features belong to texts (``text_id``, a content hash), never to pairs, so a text that appears in
several pairs or in a rewrite is featurized once. A text counts as *done* for a featurizer when it
has at least one row in ``features`` for that featurizer; the featurizer's version is kept in
``featurizers``: :func:`register_featurizer` drops stale values when the version changes (for cheap
featurizers) or refuses (for expensive ones, unless ``replace``).
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.store.core import Study, now


def register_featurizer(study: Study, featurizer: str, version: str, config: dict, defs: Sequence,
                        *, replace_stale: bool = True) -> bool:
    """Record a featurizer and its feature definitions. Returns True when stale values were dropped.

    ``defs``: objects with ``name, kind, role, proxy, description``. When the study already holds
    values from another version of the same featurizer they are deleted if ``replace_stale``,
    otherwise :class:`RmtuiError` is raised.
    """
    cfg = json.dumps(config, sort_keys=True, default=str)
    dropped = False
    with study.transaction() as cur:
        row = cur.execute("SELECT version FROM featurizers WHERE featurizer = ?", [featurizer]).fetchone()
        if row is not None and row[0] != version:
            n = cur.execute("SELECT count(*) FROM features WHERE featurizer = ?", [featurizer]).fetchone()[0]
            if n and not replace_stale:
                raise RmtuiError(
                    f"featurizer {featurizer!r}: the study holds {n:,} values from version {row[0]}, this run "
                    f"is version {version} (another prompt or label config). Use --replace to drop the old "
                    "values, or give this labeling another name.", "Featurizer changed")
            cur.execute("DELETE FROM features WHERE featurizer = ?", [featurizer])
            cur.execute("DELETE FROM label_failures WHERE featurizer = ?", [featurizer])
            dropped = bool(n)
        if row is not None and row[0] == version:
            cur.execute("UPDATE featurizers SET config = ? WHERE featurizer = ?", [cfg, featurizer])
        else:
            cur.execute("DELETE FROM featurizers WHERE featurizer = ?", [featurizer])
            cur.execute("INSERT INTO featurizers VALUES (?, ?, ?, ?)", [featurizer, version, cfg, now()])
        cur.execute("DELETE FROM feature_defs WHERE featurizer = ?", [featurizer])
        rows = [(featurizer, d.name, d.kind, d.role, bool(d.proxy), d.description) for d in defs]
        if rows:
            cur.executemany("INSERT INTO feature_defs VALUES (?, ?, ?, ?, ?, ?)", rows)
    return dropped


def featurizers(study: Study) -> pd.DataFrame:
    """The featurizers table (featurizer, version, config JSON, created_at)."""
    return study.df("SELECT * FROM featurizers ORDER BY featurizer")


def featurizer_config(study: Study, featurizer: str) -> dict | None:
    v = study.scalar("SELECT config FROM featurizers WHERE featurizer = ?", [featurizer])
    return None if v is None else json.loads(v)


def feature_defs(study: Study, featurizer: str | None = None) -> pd.DataFrame:
    if featurizer is None:
        return study.df("SELECT * FROM feature_defs ORDER BY featurizer, name")
    return study.df("SELECT * FROM feature_defs WHERE featurizer = ? ORDER BY name", [featurizer])


def done_text_ids(study: Study, featurizer: str, text_ids: Iterable[str] | None = None) -> set[str]:
    """Text ids that already hold values from ``featurizer`` (optionally restricted to ``text_ids``)."""
    if text_ids is None:
        df = study.df("SELECT DISTINCT text_id FROM features WHERE featurizer = ?", [featurizer])
        return set(df["text_id"])
    ids = pd.DataFrame({"text_id": list(dict.fromkeys(text_ids))})
    cur = study.cursor()
    try:
        cur.register("_ids", ids)
        df = cur.execute(
            "SELECT DISTINCT f.text_id FROM features f SEMI JOIN _ids USING (text_id) WHERE f.featurizer = ?",
            [featurizer]).df()
    finally:
        cur.close()
    return set(df["text_id"])


def write_features(study: Study, featurizer: str, values: pd.DataFrame) -> int:
    """Insert (or replace) long rows ``text_id, name, value`` for ``featurizer``; clears their failures."""
    if values is None or len(values) == 0:
        return 0
    df = values[["text_id", "name", "value"]].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    df.insert(1, "featurizer", featurizer)
    df = df.drop_duplicates(["text_id", "name"], keep="last")
    with study.transaction() as cur:
        cur.register("_fv", df)
        cur.execute("INSERT OR REPLACE INTO features SELECT text_id, featurizer, name, value FROM _fv")
        cur.execute("DELETE FROM label_failures WHERE featurizer = ? AND text_id IN (SELECT text_id FROM _fv)",
                    [featurizer])
        cur.unregister("_fv")
    return len(df)


# -- what a label file's keys resolve to (features.importer) ------------------------------------------
def known_text_ids(study: Study) -> set[str]:
    return set(study.df("SELECT DISTINCT text_id FROM texts")["text_id"])


def text_ids_by_pair_side(study: Study) -> dict[tuple[str, str], str]:
    t = study.df("SELECT pair_id, side, text_id FROM texts")
    return {(p, s): tid for p, s, tid in t.itertuples(index=False, name=None)}


def pair_sources(study: Study) -> list[str]:
    return list(study.df("SELECT DISTINCT source FROM pairs ORDER BY 1")["source"])


def text_ids_by_source_row(study: Study, source: str) -> dict[tuple[int, str], str]:
    t = study.df("SELECT p.source_row, t.side, t.text_id FROM pairs p JOIN texts t USING (pair_id) "
                 "WHERE p.source = ?", [source])
    return {(int(r), s): tid for r, s, tid in t.itertuples(index=False, name=None)}


def record_failures(study: Study, featurizer: str, failures: Sequence[tuple[str, str, int]]) -> None:
    """``failures``: (text_id, reason, attempts). Replaces any earlier failure of the same text."""
    if not failures:
        return
    t = now()
    with study.transaction() as cur:
        cur.executemany("INSERT OR REPLACE INTO label_failures VALUES (?, ?, ?, ?, ?)",
                        [(tid, featurizer, reason, int(att), t) for tid, reason, att in failures])


def label_failures(study: Study, featurizer: str | None = None) -> pd.DataFrame:
    if featurizer is None:
        return study.df("SELECT * FROM label_failures ORDER BY featurizer, text_id")
    return study.df("SELECT * FROM label_failures WHERE featurizer = ? ORDER BY text_id", [featurizer])


def log_llm_calls(study: Study, rows: Sequence[dict]) -> None:
    """Append rows to ``llm_calls`` (never given an API key: the client redacts it before this)."""
    if not rows:
        return
    cols = ["call_id", "request_id", "purpose", "endpoint", "model", "text_id", "attempt", "status",
            "http_status", "latency_s", "prompt_tokens", "completion_tokens", "error", "created_at"]
    with study.transaction() as cur:
        cur.executemany(f"INSERT INTO llm_calls ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        [[r.get(c) for c in cols] for r in rows])


def features_long(study: Study, featurizers: Sequence[str] | None = None,
                  text_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Long frame ``text_id, featurizer, name, value``, optionally filtered."""
    where, params = [], []
    if featurizers:
        where.append(f"featurizer IN ({', '.join('?' * len(featurizers))})")
        params += list(featurizers)
    sql = "SELECT text_id, featurizer, name, value FROM features"
    cur = study.cursor()
    try:
        if text_ids is not None:
            cur.register("_ids", pd.DataFrame({"text_id": list(dict.fromkeys(text_ids))}))
            where.append("text_id IN (SELECT text_id FROM _ids)")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return cur.execute(sql + " ORDER BY text_id, featurizer, name", params).df()
    finally:
        cur.close()


def feature_matrix(study: Study, featurizers: Sequence[str] | None = None,
                   names: Sequence[str] | None = None) -> pd.DataFrame:
    """Wide frame: one row per text_id, one column per ``"featurizer.name"``.

    ``names`` filters by feature name (either ``"name"`` or ``"featurizer.name"``).
    """
    long = features_long(study, featurizers)
    if len(long) == 0:
        return pd.DataFrame({"text_id": pd.Series([], dtype="object")})
    long["col"] = long["featurizer"] + "." + long["name"]
    if names:
        wanted = set(names)
        long = long[long["col"].isin(wanted) | long["name"].isin(wanted)]
    wide = long.pivot(index="text_id", columns="col", values="value")
    wide.columns.name = None
    return wide.reset_index()


def side_means(study: Study, featurizer: str) -> pd.DataFrame:
    """Mean of every feature of ``featurizer`` over chosen and over rejected texts of the study's pairs.

    One row per feature: ``name, kind, role, proxy, n_chosen, mean_chosen, n_rejected, mean_rejected,
    diff`` (the paper's table of label means; for binary features a mean is a prevalence).
    """
    return study.df(
        """
        WITH v AS (
            SELECT t.side, f.name, f.value FROM texts t
            JOIN features f ON f.text_id = t.text_id AND f.featurizer = ?
        )
        SELECT d.name, d.kind, d.role, d.proxy,
               count(v.value) FILTER (WHERE v.side = 'chosen') AS n_chosen,
               avg(v.value) FILTER (WHERE v.side = 'chosen') AS mean_chosen,
               count(v.value) FILTER (WHERE v.side = 'rejected') AS n_rejected,
               avg(v.value) FILTER (WHERE v.side = 'rejected') AS mean_rejected,
               avg(v.value) FILTER (WHERE v.side = 'chosen') - avg(v.value) FILTER (WHERE v.side = 'rejected') AS diff
        FROM feature_defs d LEFT JOIN v ON v.name = d.name
        WHERE d.featurizer = ?
        GROUP BY ALL ORDER BY d.role DESC, d.name
        """, [featurizer, featurizer])


def split_feature_key(key: str) -> tuple[str | None, str]:
    """``"featurizer.name"`` -> (featurizer, name), split at the *last* dot: featurizer names carry
    dots (``llm:qwen2.5``, ``hf:org/model-v1.5``), feature names do not. A bare name: (None, name)."""
    fz, sep, name = key.rpartition(".")
    return (fz, name) if sep and fz else (None, key)
