"""The entry list and one entry: counts, windows of sorted rows, positions, filter choices,
frequencies (VisiData's F) and everything about one pair.

The list is virtual: the app asks :func:`count_entries` once per filter, :func:`sorted_ids` once per
filter or sort, then :func:`fetch_rows` for the pages it shows (or :func:`fetch_window`, offset and
limit over the sorted, filtered query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.metrics.regime_names import REGIMES
from analysis.store.core import Study, first_row
from analysis.store.pairs import CONSENSUS_SQL as _CONSENSUS
from analysis.store.filters import DEFAULT_SORT, GAMMA_NONE, LIST_FROM, SORT_COLUMNS, EntryFilter, order_clause, where_clause
from analysis.store.scores import models_frame
from analysis.store.triage import all_tags


LIST_COLUMNS = ["pair_id", "subset", "split", "margin_pre", "margin_post", "regime", "gamma", "theta",
                "heldout", "tags", "selected", "prompt", "votes", "human"]
# the humans' votes as the list shows them ('2:1', '1:1:1' with tie votes; one label: 'A', 'B', 'tie') and
# the consensus class
_VOTES = ("CASE WHEN p.votes_a + p.votes_b + p.votes_tie = 1 THEN "
          "CASE WHEN p.votes_a = 1 THEN 'A' WHEN p.votes_b = 1 THEN 'B' ELSE 'tie' END "
          "WHEN p.votes_a IS NOT NULL THEN p.votes_a || ':' || p.votes_b || "
          "CASE WHEN p.votes_tie > 0 THEN ':' || p.votes_tie ELSE '' END WHEN p.human_tie THEN 'tie' END")


def non_null_counts(study: Study, filt: EntryFilter) -> dict[str, int]:
    """How many pairs of the filter have a value in each sortable list column (and ``total``): a
    column with 0 is empty there (gamma in a study without target labels), so sorting by it changes
    nothing."""
    where, params = where_clause(filt)
    cols = ", ".join(f"count({expr}) AS {name}" for name, expr in SORT_COLUMNS.items())
    cur = study.cursor()
    try:
        res = cur.execute(f"SELECT count(*) AS total, {cols} {LIST_FROM}{where}", params)
        row = res.fetchone()
        return {d[0]: int(v) for d, v in zip(res.description, row)}
    finally:
        cur.close()


def prompt_heads(study: Study, ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """``{pair_id: (human turns, first human turn)}`` of the given pairs (first turn cut to 120
    characters): the list shows a multi-turn pair's topic beside its last turn."""
    if not ids:
        return {}
    cur = study.cursor()
    try:
        rows = cur.execute(
            "SELECT pair_id, len(string_split(context, 'Human:')) - 1, "
            "substr(trim(regexp_replace(split_part(split_part(context, 'Human:', 2), 'Assistant:', 1), "
            "'\\s+', ' ', 'g')), 1, 120) FROM pairs WHERE list_contains(?::VARCHAR[], pair_id)",
            [list(ids)]).fetchall()
    finally:
        cur.close()
    return {r[0]: (int(r[1] or 0), r[2] or "") for r in rows}


def count_entries(study: Study, filt: EntryFilter) -> int:
    where, params = where_clause(filt)
    return int(study.scalar(f"SELECT count(*) {LIST_FROM}{where}", params))


# the list's display columns (LIST_COLUMNS order) of the pairs in ``w`` (pair_id, rn), in rn order
_ROW_SELECT = (
    "SELECT p.pair_id, p.subset, p.split, m.margin_pre, m.margin_post, m.regime, m.gamma, m.theta, "
    "p.heldout, tg.tags, s.pair_id IS NOT NULL AS selected, "
    "substr(trim(regexp_replace(list_extract(string_split(p.context, 'Human:'), -1), '\\s+', ' ', 'g')), 1, 160) "
    "AS prompt, " + _VOTES + " AS votes, " + _CONSENSUS + " AS human "
)
_ROW_JOINS = (
    "JOIN pairs p ON p.pair_id = w.pair_id LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
    "LEFT JOIN (SELECT pair_id, string_agg(tag, ' ' ORDER BY tag) AS tags FROM triage "
    "           WHERE tag IS NOT NULL GROUP BY pair_id) tg ON tg.pair_id = p.pair_id "
    "LEFT JOIN selection s ON s.pair_id = p.pair_id ORDER BY w.rn"
)


def fetch_window(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None, offset: int,
                 limit: int) -> list[tuple]:
    """Rows ``offset .. offset+limit`` of the sorted, filtered list, as tuples in ``LIST_COLUMNS`` order.

    The sort runs on keys only; display columns (the prompt snippet, selection) are computed for the
    window's rows alone, so a page of 200 costs the same at any depth of a 160,000-row list.
    """
    where, params = where_clause(filt)
    sql = (
        f"WITH w AS (SELECT p.pair_id, row_number() OVER () AS rn FROM (SELECT p.pair_id {LIST_FROM}{where} "
        f"{order_clause(sort)} LIMIT ? OFFSET ?) p) " + _ROW_SELECT + "FROM w " + _ROW_JOINS
    )
    cur = study.cursor()
    try:
        return cur.execute(sql, params + [int(limit), int(offset)]).fetchall()
    finally:
        cur.close()


def sorted_ids(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None = None) -> list[str]:
    """Every pair id of the filter in list order: the app's list runs this once per filter or sort
    change and then fetches pages of rows by slicing it (:func:`fetch_rows`); the export and the
    report take their pairs from it."""
    return sorted_id_array(study, filt, sort).to_pylist()


def sorted_id_array(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None = None):
    """:func:`sorted_ids` as one Arrow string array (``pyarrow.Array``): DuckDB builds it without the
    GIL, so a worker fetching a million ids leaves the UI thread free, and the app slices it a page at
    a time (``ids[a:b].to_pylist()``) rather than holding a million Python strings."""
    where, params = where_clause(filt)
    col = (sort or DEFAULT_SORT)[0]
    src = LIST_FROM if col == "tags" else "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
    cur = study.cursor()
    try:
        table = cur.sql(f"SELECT p.pair_id {src}{where} {order_clause(sort)}", params=params).to_arrow_table()
    finally:
        cur.close()
    return table.column(0).combine_chunks()


# the same joins for a page of given ids ($1): each table is filtered to those ids as it is scanned (a
# page of 200 at a million pairs: 17 ms, where hash joins over the whole tables took 75)
_PAGE_JOINS = (
    "JOIN (SELECT * FROM pairs WHERE list_contains($1, pair_id)) p ON p.pair_id = w.pair_id "
    "LEFT JOIN (SELECT * FROM pair_metrics WHERE list_contains($1, pair_id)) m ON m.pair_id = p.pair_id "
    "LEFT JOIN (SELECT pair_id, string_agg(tag, ' ' ORDER BY tag) AS tags FROM triage "
    "           WHERE tag IS NOT NULL AND list_contains($1, pair_id) GROUP BY pair_id) tg ON tg.pair_id = p.pair_id "
    "LEFT JOIN selection s ON s.pair_id = p.pair_id ORDER BY w.rn"
)


def fetch_rows(study: Study, ids: Sequence[str]) -> list[tuple]:
    """List rows (``LIST_COLUMNS`` order) of the given pairs, in the order given."""
    if not ids:
        return []
    sql = (_ROW_SELECT + "FROM (SELECT unnest($1::VARCHAR[]) AS pair_id, unnest(range(1, $2)) AS rn) w "
           + _PAGE_JOINS)
    cur = study.cursor()
    try:
        return cur.execute(sql, [list(ids), len(ids) + 1]).fetchall()
    finally:
        cur.close()


def position_of(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None, pair_id: str) -> int | None:
    """Row index of a pair in the sorted, filtered list (None when it is not in it)."""
    where, params = where_clause(filt)
    sql = (f"SELECT rn FROM (SELECT p.pair_id, row_number() OVER ({order_clause(sort)}) - 1 AS rn {LIST_FROM}{where}) "
           "WHERE pair_id = ?")
    v = study.scalar(sql, params + [pair_id])
    return None if v is None else int(v)


_VALUE_FIELDS = ("regime", "subset", "split", "gamma", "tag", "human", "feature")


def list_values(study: Study, fields: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Choices for the filter dialog: subsets, splits, tags, features present in the study. ``fields``:
    only these (the gamma values join every pair to its metrics: 0.2 s at a million pairs)."""
    want = _VALUE_FIELDS if fields is None else [f for f in _VALUE_FIELDS if f in fields]

    def rows(sql: str) -> list:
        return study.con.cursor().execute(sql).fetchall()

    get = {
        "regime": lambda: REGIMES,
        "subset": lambda: [r[0] for r in rows("SELECT DISTINCT subset FROM pairs WHERE subset IS NOT NULL ORDER BY 1")],
        "split": lambda: [r[0] for r in rows("SELECT DISTINCT split FROM pairs WHERE split IS NOT NULL ORDER BY 1")],
        "gamma": lambda: [r[0] for r in rows(
            f"SELECT DISTINCT coalesce(m.gamma, '{GAMMA_NONE}') FROM pairs p "
            "LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id ORDER BY 1")],
        "tag": lambda: all_tags(study),
        "human": lambda: ["tie", "split", "unanimous", "single"],
        "feature": lambda: [f"{a}.{b}" for a, b in rows("SELECT featurizer, name FROM feature_defs ORDER BY 1, 2")],
    }
    return {f: get[f]() for f in want}


def empty_columns(study: Study) -> tuple[int, set[str]]:
    """(pairs in the study, the sortable list columns no pair has a value in): what
    ``non_null_counts(study, EntryFilter(regime=None))`` says with its zeros, without joining every pair
    to its metrics and tags (0.15-0.5 s at a million pairs). A metrics or tags column is non-empty as
    soon as a few of its non-null rows belong to pairs of the study (a point look-up); only where none
    of those does (rows of pairs no longer in the study) is the whole join counted."""
    cur = study.cursor()
    try:
        pair_cols = {n: e[2:] for n, e in SORT_COLUMNS.items() if e.startswith("p.")}
        row = cur.execute("SELECT count(*)" + "".join(f", count({c})" for c in pair_cols.values())
                          + " FROM pairs").fetchone()
        total = int(row[0])
        empty = {n for n, v in zip(pair_cols, row[1:]) if not v}
        others = {n: ("pair_metrics", e[2:] + " IS NOT NULL") for n, e in SORT_COLUMNS.items() if e.startswith("m.")}
        others.update({n: ("triage", "tag IS NOT NULL") for n, e in SORT_COLUMNS.items() if e.startswith("tg.")})
        for name, (table, cond) in others.items():
            witnesses = [r[0] for r in cur.execute(
                f"SELECT pair_id FROM {table} WHERE {cond} AND pair_id IS NOT NULL LIMIT 64").fetchall()]
            if witnesses and cur.execute("SELECT count(*) FROM pairs WHERE list_contains(?::VARCHAR[], pair_id)",
                                         [witnesses]).fetchone()[0]:  # a filter on the scan: 2 ms (IN: 30)
                continue
            if not witnesses or not cur.execute(
                    f"SELECT count(*) FROM pairs p WHERE p.pair_id IN (SELECT pair_id FROM {table} WHERE {cond})"
            ).fetchone()[0]:
                empty.add(name)
        return total, empty
    finally:
        cur.close()


# -- one entry --------------------------------------------------------------------------------------
@dataclass
class Entry:
    pair_id: str
    pair: dict
    metrics: dict | None
    rewards: pd.DataFrame            # model_id, name, role, side, reward
    features: pd.DataFrame           # featurizer, name, role, proxy, chosen, rejected
    tags: list[str]
    note: str | None
    selected: bool
    rewrites: pd.DataFrame = field(default_factory=pd.DataFrame)


def get_entry(study: Study, pair_id: str) -> Entry:
    cur = study.cursor()
    try:
        res = cur.execute("SELECT * FROM pairs WHERE pair_id = ?", [pair_id])
        row = first_row(res)
        if row is None:
            raise RmtuiError(f"{study.path}: no pair {pair_id!r}", "Entry not found")
        pair = dict(zip([d[0] for d in res.description], row))
        res = cur.execute("SELECT * FROM pair_metrics WHERE pair_id = ?", [pair_id])
        mrow = first_row(res)
        metrics = dict(zip([d[0] for d in res.description], mrow)) if mrow else None
        rewards = cur.execute(
            "SELECT mo.model_id, mo.name, mo.role, t.side, s.reward FROM models mo "
            "CROSS JOIN (VALUES ('chosen', ?), ('rejected', ?)) t(side, text_id) "
            "LEFT JOIN (SELECT * FROM scores WHERE text_id IN (?, ?)) s "  # the two texts' rows, filtered in the scan
            "ON s.model_id = mo.model_id AND s.text_id = t.text_id "
            "ORDER BY CASE mo.role WHEN 'pre' THEN 0 WHEN 'post' THEN 1 ELSE 2 END, mo.name, t.side",
            [pair["chosen_text_id"], pair["rejected_text_id"]] * 2,
        ).df()
        features = cur.execute(
            "SELECT d.featurizer, d.name, d.role, d.proxy, fc.value AS chosen, fr.value AS rejected "
            "FROM feature_defs d "
            "LEFT JOIN (SELECT * FROM features WHERE text_id = ?) fc ON fc.featurizer = d.featurizer AND fc.name = d.name "
            "LEFT JOIN (SELECT * FROM features WHERE text_id = ?) fr ON fr.featurizer = d.featurizer AND fr.name = d.name "
            "ORDER BY CASE d.role WHEN 'target' THEN 0 ELSE 1 END, d.featurizer, d.name",
            [pair["chosen_text_id"], pair["rejected_text_id"]],
        ).df()
        tags = [r[0] for r in cur.execute(
            "SELECT DISTINCT tag FROM triage WHERE pair_id = ? AND tag IS NOT NULL ORDER BY 1", [pair_id]).fetchall()]
        note = first_row(cur.execute("SELECT note FROM triage WHERE pair_id = ? AND tag IS NULL LIMIT 1", [pair_id]))
        selected = first_row(cur.execute("SELECT count(*) FROM selection WHERE pair_id = ?", [pair_id]))[0] > 0
        rewrites = cur.execute(
            "SELECT rewrite_id, side, rewriter, params, new_response, similarity, kept, created_at "
            "FROM rewrites WHERE pair_id = ? ORDER BY created_at, rewrite_id", [pair_id]).df()
    finally:
        cur.close()
    return Entry(pair_id, pair, metrics, rewards, features, tags, note[0] if note else None, selected, rewrites)


def models(study: Study) -> pd.DataFrame:
    """The study's RMs as the entry screen lists them: pre, post, then the others."""
    return models_frame(study)[["model_id", "name", "role", "path_or_hub_id"]]


# -- frequencies --------------------------------------------------------------------------------------
# value of a list column for F (frequency), over the filtered rows p (pairs with the metrics' regime and
# gamma), and the filter field a value drills down into
FREQUENCY_COLUMNS = {
    "subset": ("coalesce(p.subset, '(none)')", "subset"),
    "split": ("coalesce(p.split, '(none)')", "split"),
    "regime": ("coalesce(p.regime, 'unscored')", "regime"),
    "gamma": (f"coalesce(p.gamma, '{GAMMA_NONE}')", "gamma"),
    "heldout": ("CASE WHEN p.heldout THEN 'held out' WHEN NOT p.heldout THEN 'in sample' ELSE 'unknown' END",
                "heldout"),
    "selected": ("CASE WHEN p.pair_id IN (SELECT pair_id FROM selection) THEN 'selected' ELSE 'not selected' END",
                 "selected"),
    "tags": ("t.tag", "tag"),
    "votes": (None, "human"),  # over the consensus class (tie, split, unanimous, single)
}


def frequency(study: Study, filt: EntryFilter, column: str) -> list[tuple[str, int]]:
    """(value, pairs) of a list column over the pairs of ``filt``, most frequent first (VisiData's F).
    ``tags``: a pair counts once per tag it has, and once as '(no tag)' if it has none."""
    if column not in FREQUENCY_COLUMNS:
        raise RmtuiError(f"frequency of {column!r}: one of {', '.join(FREQUENCY_COLUMNS)}", "Frequency")
    expr = FREQUENCY_COLUMNS[column][0] or _CONSENSUS
    where, params = where_clause(filt)
    src = f"SELECT p.*, m.regime, m.gamma {LIST_FROM}{where}"
    if column == "tags":
        sql = (f"SELECT coalesce(t.tag, '(no tag)') AS v, count(*) AS n FROM ({src}) p "
               "LEFT JOIN triage t ON t.pair_id = p.pair_id AND t.tag IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1")
    else:
        sql = f"SELECT {expr} AS v, count(*) AS n FROM ({src}) p GROUP BY 1 ORDER BY 2 DESC, 1"
    return [(str(v), int(n)) for v, n in study.con.cursor().execute(sql, params).fetchall()]


def drill_down(filt: EntryFilter, column: str, value: str) -> EntryFilter | None:
    """The filter narrowed to the pairs whose ``column`` is ``value`` (None where no filter can say it:
    '(no tag)', 'not selected', a missing subset)."""
    field = FREQUENCY_COLUMNS[column][1]
    if value in ("(none)", "(no tag)", "not selected", "unknown"):
        return None
    if field == "heldout":
        return filt.replace(heldout=value == "held out")
    if field == "selected":
        return filt.replace(selected=True)
    return filt.replace(**{field: value})


def has_votes(study: Study) -> bool:
    """Whether any pair has human votes or is a human tie (the list shows its votes column then)."""
    return bool(study.scalar("SELECT count(*) FROM pairs WHERE votes_a IS NOT NULL OR human_tie"))
