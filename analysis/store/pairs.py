"""Writes and reads of pairs, texts and ingest bookkeeping."""

from __future__ import annotations

import json
from typing import Iterable, Sequence

import pandas as pd

from .. import __version__
from ..data import Issue, Pair
from . import jobs
from .core import Study, now

PAIR_COLUMNS = [
    "pair_id", "dataset", "subset", "split", "source", "source_row", "context",
    "chosen_response", "rejected_response", "chosen_text", "rejected_text",
    "chosen_text_id", "rejected_text_id", "rejected_context", "context_differs", "identical",
    "heldout", "ingest_id",
]


def start_ingest(study: Study, source: str, options: dict) -> int:
    with study.transaction() as cur:
        ingest_id = cur.execute("SELECT nextval('ingest_seq')").fetchone()[0]
        cur.execute(
            "INSERT INTO ingests VALUES (?, ?, ?, ?, ?, NULL, 0, 0, 0, 'running')",
            [ingest_id, source, json.dumps(options, sort_keys=True, default=str), __version__, now()],
        )
        jobs.register(cur, "ingest", ingest_id)
    return int(ingest_id)


def add_pairs(study: Study, pairs: Sequence[Pair], ingest_id: int) -> int:
    """Insert pairs and their two texts in one transaction; existing pair ids are skipped.

    Returns how many pairs were new.
    """
    if not pairs:
        return 0
    rows = []
    text_rows = []
    for p in pairs:
        pid = p.pair_id
        rows.append((
            pid, p.dataset, p.subset, p.split, p.source, p.source_row, p.chosen_context,
            p.chosen_response, p.rejected_response, p.chosen_text, p.rejected_text,
            p.chosen_text_id, p.rejected_text_id, p.rejected_context, p.context_differs, p.identical,
            None, ingest_id,
        ))
        text_rows.append((pid, "chosen", p.chosen_text_id, p.chosen_context, p.chosen_response, p.chosen_text))
        text_rows.append((pid, "rejected", p.rejected_text_id, p.rejected_context, p.rejected_response, p.rejected_text))
    pdf = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    pdf = pdf.drop_duplicates("pair_id")
    tdf = pd.DataFrame(text_rows, columns=["pair_id", "side", "text_id", "context", "response", "text"])
    tdf = tdf.drop_duplicates(["pair_id", "side"])
    with study.transaction() as cur:
        cur.register("_new_pairs", pdf)
        cur.register("_new_texts", tdf)
        before = cur.execute("SELECT count(*) FROM pairs").fetchone()[0]
        cur.execute(
            f"INSERT INTO pairs ({', '.join(PAIR_COLUMNS)}) "
            f"SELECT {', '.join('n.' + c for c in PAIR_COLUMNS)} FROM _new_pairs n "
            "ANTI JOIN pairs p ON p.pair_id = n.pair_id"
        )
        after = cur.execute("SELECT count(*) FROM pairs").fetchone()[0]
        cur.execute(
            "INSERT INTO texts SELECT n.* FROM _new_texts n "
            "ANTI JOIN texts t ON t.pair_id = n.pair_id AND t.side = n.side"
        )
        cur.unregister("_new_pairs")
        cur.unregister("_new_texts")
    return int(after - before)


def add_issues(study: Study, issues: Iterable[Issue], ingest_id: int) -> None:
    rows = [(ingest_id, i.source, i.line, i.kind, i.message, i.excerpt, i.fatal) for i in issues]
    if not rows:
        return
    with study.transaction() as cur:
        cur.executemany("INSERT INTO ingest_issues VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def finish_ingest(study: Study, ingest_id: int, n_read: int, n_added: int, n_issues: int, status: str) -> None:
    with study.transaction() as cur:
        cur.execute(
            "UPDATE ingests SET finished_at = ?, n_read = ?, n_added = ?, n_issues = ?, status = ? "
            "WHERE ingest_id = ?",
            [now(), n_read, n_added, n_issues, status, ingest_id],
        )
        jobs.unregister(cur, "ingest", ingest_id)


def pair_counts(study: Study) -> pd.DataFrame:
    """Pairs per (dataset, subset, split) with identical and context-differs counts."""
    return study.df(
        "SELECT dataset, subset, split, count(*) AS pairs, "
        "count(*) FILTER (WHERE identical) AS identical, "
        "count(*) FILTER (WHERE context_differs) AS context_differs "
        "FROM pairs GROUP BY ALL ORDER BY subset, split"
    )


def n_pairs(study: Study) -> int:
    return int(study.scalar("SELECT count(*) FROM pairs"))


def all_texts(study: Study, *, pair_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Distinct texts of the study (one row per text_id) with context, response and full text."""
    if pair_ids is None:
        return study.df(
            "SELECT text_id, any_value(context) AS context, any_value(response) AS response, "
            "any_value(text) AS text FROM texts GROUP BY text_id ORDER BY text_id"
        )
    cur = study.cursor()
    try:
        cur.register("_ids", pd.DataFrame({"pair_id": list(pair_ids)}))
        return cur.execute(
            "SELECT text_id, any_value(context) AS context, any_value(response) AS response, "
            "any_value(text) AS text FROM texts SEMI JOIN _ids USING (pair_id) GROUP BY text_id ORDER BY text_id"
        ).df()
    finally:
        cur.close()


def set_heldout(study: Study, heldout_ids: Iterable[str], *, all_known: bool = True) -> None:
    """Mark pairs held out from every RM's training; with ``all_known`` the rest become in-sample."""
    ids = pd.DataFrame({"pair_id": list(heldout_ids)})
    with study.transaction() as cur:
        cur.register("_held", ids)
        if all_known:
            cur.execute("UPDATE pairs SET heldout = FALSE")
        cur.execute("UPDATE pairs SET heldout = TRUE WHERE pair_id IN (SELECT pair_id FROM _held)")
        cur.unregister("_held")
