"""Writes and reads of pairs, texts and ingest bookkeeping."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Iterable, Sequence

import duckdb
import pandas as pd

from analysis import __version__
from analysis.store import jobs
from analysis.store.core import Study, now

if TYPE_CHECKING:  # records made by analysis.datasets (the store sits below the readers)
    from analysis.datasets.readers import Issue, Pair

PAIR_COLUMNS = [
    "pair_id", "dataset", "subset", "split", "source", "source_row", "context",
    "chosen_response", "rejected_response", "chosen_text", "rejected_text",
    "chosen_text_id", "rejected_text_id", "rejected_context", "context_differs", "identical",
    "heldout", "ingest_id",
]
# human-label columns (schema V2_HUMAN_LABELS), filled from Pair.extra
HUMAN_COLUMNS = [
    "preference", "human_tie", "a_is_chosen", "label_raw", "votes_a", "votes_b", "votes_tie",
    "annotator_agreement", "human_margin", "dimension", "source_item",
]


def start_ingest(study: Study, source: str, options: dict) -> int:
    with study.transaction() as cur:
        ingest_id = cur.execute("SELECT nextval('ingest_seq')").fetchone()[0]
        cur.execute(
            "INSERT INTO ingests (ingest_id, source, options, rmtui_version, started_at, finished_at, n_read, "
            "n_added, n_issues, status) VALUES (?, ?, ?, ?, ?, NULL, 0, 0, 0, 'running')",
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
    human = [c for c in HUMAN_COLUMNS if c != "human_tie"]
    for p in pairs:
        pid, cid, rid = p.pair_id, p.chosen_text_id, p.rejected_text_id  # content hashes: computed once
        ex = p.extra
        rows.append((
            pid, p.dataset, p.subset, p.split, p.source, p.source_row, p.chosen_context,
            p.chosen_response, p.rejected_response, p.chosen_text, p.rejected_text,
            cid, rid, p.rejected_context, p.context_differs, p.identical,
            None, ingest_id, bool(ex.get("human_tie")), *(ex.get(c) for c in human),
        ))
        text_rows.append((pid, "chosen", cid, p.chosen_context, p.chosen_response, p.chosen_text))
        text_rows.append((pid, "rejected", rid, p.rejected_context, p.rejected_response, p.rejected_text))
    cols = PAIR_COLUMNS + ["human_tie"] + human
    pdf = pd.DataFrame(rows, columns=cols)
    for c in ("votes_a", "votes_b", "votes_tie"):
        pdf[c] = pd.array(pdf[c], dtype="Int64")
    for c in ("annotator_agreement", "human_margin"):
        pdf[c] = pd.to_numeric(pdf[c], errors="coerce").astype("float64")
    for c in ("preference", "label_raw", "dimension", "source_item"):
        pdf[c] = pdf[c].astype(object)
    pdf["a_is_chosen"] = pd.array(pdf["a_is_chosen"], dtype="boolean")
    pdf = pdf.drop_duplicates("pair_id")
    tdf = pd.DataFrame(text_rows, columns=["pair_id", "side", "text_id", "context", "response", "text"])
    tdf = tdf.drop_duplicates(["pair_id", "side"])
    return _insert_columns(study, pdf, tdf, cols, "INSERT OR IGNORE")


@contextlib.contextmanager
def bulk_load(study: Study):
    """Many large inserts: DuckDB's automatic checkpoints (one per 16 MB of log, each rewriting the
    primary-key indexes) wait until the end, then one checkpoint. Every transaction is still committed
    to the log, so a killed load loses nothing committed (DuckDB replays the log on the next open)."""
    with study.hold() as con:
        try:
            con.execute("SET checkpoint_threshold = '1GB'")
            yield
        finally:
            try:
                con.execute("RESET checkpoint_threshold")
                con.execute("CHECKPOINT")
            except duckdb.Error:  # another transaction still open elsewhere: DuckDB checkpoints later
                pass


# Arrow types of the columns of add_pair_columns (what add_pairs' DataFrame holds)
_COLUMN_TYPES = {"source_row": "int64", "context_differs": "bool", "identical": "bool", "heldout": "bool",
                 "ingest_id": "int64", "human_tie": "bool", "a_is_chosen": "bool", "votes_a": "int64",
                 "votes_b": "int64", "votes_tie": "int64", "annotator_agreement": "float64",
                 "human_margin": "float64"}


def add_pair_columns(study: Study, pairs: dict, texts: dict, ingest_id: int, *, known_new: bool = True) -> int:
    """Insert pairs given as columns (``PAIR_COLUMNS`` + ``HUMAN_COLUMNS`` but ``heldout`` and
    ``ingest_id``, each a list) and their texts (``pair_id, side, text_id, context, response, text``), in
    one transaction, as :func:`add_pairs` does for records: existing pair ids are skipped. The columnar
    ingest (analysis/datasets/columnar.py) calls this. Returns how many pairs were new.

    ``known_new``: first a plain INSERT (a third cheaper than INSERT OR IGNORE); where an id is already
    stored it fails as a whole, is rolled back, and the batch is inserted again skipping stored ids."""
    import pyarrow as pa

    n = len(pairs["pair_id"])
    if not n:
        return 0
    cols = PAIR_COLUMNS + ["human_tie"] + [c for c in HUMAN_COLUMNS if c != "human_tie"]
    arrays = {}
    for c in cols:
        if c == "heldout":
            values = [None] * n
        elif c == "ingest_id":
            values = [ingest_id] * n
        else:
            values = pairs[c]
        arrays[c] = pa.array(values, type=pa.type_for_alias(_COLUMN_TYPES.get(c, "string")))
    ptab = pa.table(arrays)
    ttab = pa.table({c: pa.array(texts[c], type=pa.string()) for c in
                     ("pair_id", "side", "text_id", "context", "response", "text")})
    if len(set(pairs["pair_id"])) != n:  # the same id twice in one batch: keep the first, as add_pairs does
        keep = pd.Series(pairs["pair_id"]).drop_duplicates().index.to_numpy()
        ptab = ptab.take(keep)
        tdf = ttab.to_pandas().drop_duplicates(["pair_id", "side"])
        ttab = pa.Table.from_pandas(tdf, preserve_index=False)
    if known_new:
        try:
            return _insert_columns(study, ptab, ttab, cols, "INSERT")
        except (duckdb.ConstraintException, duckdb.TransactionException):  # an id already stored: rolled back
            pass
    return _insert_columns(study, ptab, ttab, cols, "INSERT OR IGNORE")


def _insert_columns(study: Study, ptab, ttab, cols: list[str], verb: str) -> int:
    """Pairs (``cols`` of ``ptab``) and their texts (``ttab``, Arrow tables or DataFrames) in one
    transaction; how many pairs were added."""
    with study.transaction() as cur:
        cur.register("_new_pairs", ptab)
        cur.register("_new_texts", ttab)
        # the primary keys skip ids already stored (an anti join would hash the whole table per batch)
        added = cur.execute(f"{verb} INTO pairs ({', '.join(cols)}) SELECT {', '.join(cols)} "
                            "FROM _new_pairs").fetchone()[0]
        cur.execute(f"{verb} INTO texts SELECT * FROM _new_texts")
        cur.unregister("_new_pairs")
        cur.unregister("_new_texts")
    return int(added)


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
    """Pairs per (dataset, subset, split) with identical, context-differs and human-tie counts."""
    return study.df(
        "SELECT dataset, subset, split, count(*) AS pairs, "
        "count(*) FILTER (WHERE identical) AS identical, "
        "count(*) FILTER (WHERE context_differs) AS context_differs, "
        "count(*) FILTER (WHERE human_tie) AS human_ties, "
        "count(*) FILTER (WHERE votes_a IS NOT NULL AND votes_a + votes_b + votes_tie > 1 "
        "AND annotator_agreement < 1 AND NOT human_tie) AS split_votes "
        "FROM pairs GROUP BY ALL ORDER BY subset, split"
    )


def human_tie_ids(study: Study) -> set[str]:
    """Pair ids the humans called a tie (kept out of agreement, regimes and the imprint)."""
    return set(study.df("SELECT pair_id FROM pairs WHERE human_tie")["pair_id"])


def human_labels(study: Study) -> pd.DataFrame:
    """The human-label columns of every pair that has any (A/B, votes, scores, lists)."""
    return study.df(
        f"SELECT pair_id, subset, {', '.join(HUMAN_COLUMNS)} FROM pairs "
        "WHERE preference IS NOT NULL OR votes_a IS NOT NULL OR human_margin IS NOT NULL ORDER BY pair_id")


def n_pairs(study: Study) -> int:
    return int(study.scalar("SELECT count(*) FROM pairs"))


def first_pair_ids(study: Study, limit: int, seed: int | None = None) -> list[str]:
    """``limit`` pair ids: the first by source and row, or (``seed`` given) a seeded random sample."""
    if seed is None:
        ids = study.df("SELECT pair_id FROM pairs ORDER BY source, source_row, pair_id LIMIT ?", [int(limit)])
    else:
        ids = study.df("SELECT pair_id FROM pairs ORDER BY hash(pair_id || ?::VARCHAR) LIMIT ?",
                       [str(seed), int(limit)])
    return list(ids["pair_id"])


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


# how the humans decided a pair: 'tie' (human_tie), 'split' (annotators disagreed), 'unanimous' (several
# annotators, one voice), 'single' (one label or a chosen/rejected set). A SQL expression over pairs p.
CONSENSUS_SQL = (
    "CASE WHEN p.human_tie THEN 'tie' "
    "WHEN p.votes_a IS NULL OR p.votes_a + p.votes_b + p.votes_tie <= 1 THEN 'single' "
    "WHEN p.annotator_agreement < 1 THEN 'split' ELSE 'unanimous' END"
)


def human_vs_rm(study: Study) -> pd.DataFrame:
    """Per pair: subset, dimension, consensus, votes, annotator_agreement, human_margin and the latest
    fit's agree_pre / agree_post / regime (NULL before a fit or for pairs the fit left out)."""
    return study.df(
        f"SELECT p.pair_id, p.subset, p.dimension, {CONSENSUS_SQL} AS consensus, p.votes_a, p.votes_b, "
        "p.votes_tie, p.annotator_agreement, p.human_margin, m.agree_pre, m.agree_post, m.regime "
        "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id ORDER BY p.pair_id")


# -- re-ingest, repeated judgments (issue 24) ---------------------------------------------------------


def source_ingests(study: Study, source: str, hf_split: str | None = None,
                   hf_data_dir: str | None = None) -> pd.DataFrame:
    """Earlier ingests of ``source`` whose pairs are still in the study: ingest_id, options (JSON), pairs.
    An ``hf:`` name counts as one source per split and data_dir."""
    df = study.df(
        "SELECT i.ingest_id, i.options, count(p.pair_id) AS pairs FROM ingests i "
        "JOIN pairs p ON p.ingest_id = i.ingest_id WHERE i.source = ? GROUP BY ALL ORDER BY i.ingest_id",
        [source])
    if source.startswith("hf:") and len(df):
        def same(opts: str) -> bool:
            o = json.loads(opts or "{}")
            return o.get("hf_split", "train") == (hf_split or "train") and o.get("hf_data_dir") == hf_data_dir
        df = df[[same(o) for o in df["options"]]].reset_index(drop=True)
    return df


def delete_ingest_pairs(study: Study, ingest_ids: Sequence[int]) -> int:
    """Remove the pairs (and their texts and per-pair metrics) of the given ingests; how many pairs."""
    ids = [int(i) for i in ingest_ids]
    if not ids:
        return 0
    with study.transaction() as cur:
        cur.register("_ing", pd.DataFrame({"ingest_id": ids}))
        sel = "SELECT pair_id FROM pairs WHERE ingest_id IN (SELECT ingest_id FROM _ing)"
        n = cur.execute(f"SELECT count(*) FROM ({sel})").fetchone()[0]
        cur.execute(f"DELETE FROM texts WHERE pair_id IN ({sel})")
        cur.execute(f"DELETE FROM pair_metrics WHERE pair_id IN ({sel})")
        cur.execute("DELETE FROM pairs WHERE ingest_id IN (SELECT ingest_id FROM _ing)")
        cur.unregister("_ing")
    return int(n)


def drop_ingest(study: Study, ingest_id: int) -> None:
    """Forget an ingest that failed before it stored anything (the study stays as it was)."""
    with study.transaction() as cur:
        cur.execute("DELETE FROM ingest_issues WHERE ingest_id = ?", [ingest_id])
        cur.execute("DELETE FROM ingests WHERE ingest_id = ?", [ingest_id])
        jobs.unregister(cur, "ingest", ingest_id)


def repeat_members(study: Study, source: str) -> pd.DataFrame:
    """Pairs of ``source`` with a human label that share subset, split, dimension and their two texts
    (either order) with another pair of it: one row per pair, ``grp`` numbering the item."""
    # the repeated keys first (a GROUP BY), then only their pairs are ranked: a window over every pair
    # of a million-pair source sorted all of them
    key = ("subset, split, coalesce(dimension, '') AS dim, least(chosen_text_id, rejected_text_id) AS lo, "
           "greatest(chosen_text_id, rejected_text_id) AS hi")
    return study.df(
        f"WITH r AS (SELECT {key} FROM pairs WHERE source = ? AND preference IN ('a', 'b', 'tie') "
        "GROUP BY ALL HAVING count(*) > 1), "
        f"k AS (SELECT pair_id, ingest_id, source_row, a_is_chosen, chosen_text_id, rejected_text_id, votes_a, "
        f"votes_b, votes_tie, preference, merged_rows, n_records, records_disagree, {key} "
        "FROM pairs WHERE source = ? AND preference IN ('a', 'b', 'tie')) "
        "SELECT k.pair_id, k.ingest_id, k.source_row, k.a_is_chosen, k.chosen_text_id, k.rejected_text_id, "
        "k.votes_a, k.votes_b, k.votes_tie, k.preference, k.merged_rows, k.n_records, k.records_disagree, "
        "dense_rank() OVER (ORDER BY k.subset, k.split, k.dim, k.lo, k.hi) AS grp "
        "FROM k SEMI JOIN r ON k.subset = r.subset AND k.split = r.split AND k.dim = r.dim AND k.lo = r.lo "
        "AND k.hi = r.hi ORDER BY grp, k.source_row, k.pair_id", [source, source])


def merge_pairs(study: Study, updates: pd.DataFrame, deletes: Sequence[str]) -> None:
    """Write merged items: ``updates`` (pair_id, swap, votes_a, votes_b, votes_tie, preference, human_tie,
    a_is_chosen, annotator_agreement, label_raw, n_records, merged_rows, records_disagree) and the folded
    pairs to delete."""
    with study.transaction() as cur:
        cur.register("_del", pd.DataFrame({"pair_id": list(deletes)}, dtype=object))
        cur.execute("DELETE FROM texts WHERE pair_id IN (SELECT pair_id FROM _del)")
        cur.execute("DELETE FROM pair_metrics WHERE pair_id IN (SELECT pair_id FROM _del)")
        cur.execute("DELETE FROM pairs WHERE pair_id IN (SELECT pair_id FROM _del)")
        cur.unregister("_del")
        if not len(updates):
            return
        upd = updates.copy()
        for c in ("votes_a", "votes_b", "votes_tie", "n_records"):
            upd[c] = pd.array(upd[c], dtype="Int64")
        cur.register("_upd", upd)
        # the majority turned the pair round: chosen and rejected trade places (texts re-inserted: a
        # primary key cannot be swapped in place)
        cur.execute(
            "UPDATE pairs SET context = rejected_context, rejected_context = context, "
            "chosen_response = rejected_response, rejected_response = chosen_response, "
            "chosen_text = rejected_text, rejected_text = chosen_text, "
            "chosen_text_id = rejected_text_id, rejected_text_id = chosen_text_id "
            "WHERE pair_id IN (SELECT pair_id FROM _upd WHERE swap)")
        cur.execute("CREATE TEMP TABLE _swapped AS SELECT t.* REPLACE (CASE t.side WHEN 'chosen' THEN 'rejected' "
                    "ELSE 'chosen' END AS side) FROM texts t WHERE t.pair_id IN (SELECT pair_id FROM _upd WHERE swap)")
        cur.execute("DELETE FROM texts WHERE pair_id IN (SELECT pair_id FROM _upd WHERE swap)")
        cur.execute("INSERT INTO texts SELECT * FROM _swapped")
        cur.execute("DROP TABLE _swapped")
        cur.execute(
            "UPDATE pairs SET votes_a = u.votes_a, votes_b = u.votes_b, votes_tie = u.votes_tie, "
            "preference = u.preference, human_tie = u.human_tie, a_is_chosen = u.a_is_chosen, "
            "annotator_agreement = u.annotator_agreement, label_raw = u.label_raw, n_records = u.n_records, "
            "merged_rows = u.merged_rows, records_disagree = u.records_disagree FROM _upd u WHERE pairs.pair_id = u.pair_id")
        cur.execute("DELETE FROM pair_metrics WHERE pair_id IN (SELECT pair_id FROM _upd)")  # a fit must see the votes
        cur.unregister("_upd")


def record_ingest_merges(study: Study, ingest_id: int, *, n_merged: int, n_repeated_items: int,
                         n_conflicting: int, n_replaced: int = 0) -> None:
    with study.transaction() as cur:
        cur.execute("UPDATE ingests SET n_merged = ?, n_repeated_items = ?, n_conflicting = ?, n_replaced = ? "
                    "WHERE ingest_id = ?", [n_merged, n_repeated_items, n_conflicting, n_replaced, ingest_id])


def merge_counts(study: Study) -> dict:
    """Repeated judgments over the study's pairs: records merged into another pair, pairs judged by
    several records, and those whose records disagreed (for ``rmtui summary``)."""
    row = study.df(
        "SELECT coalesce(sum(n_records - 1), 0) AS m, count(*) AS r, count(*) FILTER (WHERE records_disagree) AS c "
        "FROM pairs WHERE n_records > 1").iloc[0]
    return {"merged_records": int(row["m"]), "repeated_items": int(row["r"]), "conflicting_items": int(row["c"])}


def ingest_label_counts(study: Study, ingest_id: int) -> dict:
    """Human ties and split votes among the pairs an ingest stored (after repeated items were merged)."""
    row = study.df(
        "SELECT count(*) FILTER (WHERE human_tie) AS ties, count(*) FILTER (WHERE votes_a IS NOT NULL AND "
        "votes_a + votes_b + votes_tie > 1 AND annotator_agreement < 1 AND NOT human_tie) AS split_votes "
        "FROM pairs WHERE ingest_id = ? OR pair_id IN (SELECT pair_id FROM pairs WHERE n_records > 1 AND "
        "source = (SELECT any_value(source) FROM pairs WHERE ingest_id = ?))", [ingest_id, ingest_id]).iloc[0]
    return {"ties": int(row["ties"]), "split_votes": int(row["split_votes"])}
