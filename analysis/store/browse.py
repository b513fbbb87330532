"""Every read and write the app needs: windowed entry lists, the entry, triage, selection, fit tables.

The entry list is virtual: the app asks :func:`count_entries` once per filter and then
:func:`fetch_window` for pages of rows (offset/limit over one sorted, filtered query).

Triage lives in ``triage(pair_id, tag, note, updated_at)``: one row per tag (``note`` NULL) and at most
one note row per pair (``tag`` NULL). Every triage action appends rows to ``triage_log`` under one
``seq`` (a bulk select of 160,000 pairs is one seq), so :func:`undo_last` reverts exactly the last
action. Each action is one transaction: it is on disk when the call returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import pandas as pd

from ..errors import RmtuiError
from .core import Study, now
from .features import split_feature_key
from .pairs import CONSENSUS_SQL as _CONSENSUS

REGIMES = ["stayed_aligned", "got_aligned", "resists_alignment", "reversed", "tie", "unscored"]
GAMMAS = ["c", "i", "r"]
GAMMA_NONE = "none"  # the filter and regime-table value of pairs with no γ (no features of the kind γ needs)
DEFAULT_TAGS = ["label-noise", "rm-error", "ambiguous", "interesting"]


def _first(res):
    """The first row of a result, consuming the rest (DuckDB 2 refuses new work on an unfinished result)."""
    rows = res.fetchall()
    return rows[0] if rows else None


def bulk_insert(study: Study, frames: dict) -> None:
    """Append DataFrames or Arrow tables to tables (columns by name) in one transaction (used by the synthetic study)."""
    with study.transaction() as cur:
        for table, df in frames.items():
            names = df.column_names if hasattr(df, "column_names") else list(df.columns)
            cols = ", ".join(f'"{c}"' for c in names)
            cur.register("_bulk", df)
            cur.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _bulk')
            cur.unregister("_bulk")


# -- filters and sorting -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EntryFilter:
    """What the entry list shows. ``None`` means no constraint."""

    regime: str | None = "resists_alignment"
    subset: str | None = None
    split: str | None = None
    gamma: str | None = None
    feature: str | None = None      # "featurizer.name" (or a bare name): chosen and rejected differ on it
    tag: str | None = None
    search: str | None = None       # case-insensitive substring of the context or either response
    selected: bool = False          # only selected pairs
    heldout: bool | None = None
    human: str | None = None        # how the humans decided: tie | split | unanimous | single (pairs.votes_*)

    def replace(self, **kw: Any) -> "EntryFilter":
        return replace(self, **kw)

    def describe(self) -> str:
        parts = []
        for k in ("regime", "subset", "split", "gamma", "feature", "tag", "human"):
            v = getattr(self, k)
            if v is not None:
                parts.append(f"{k}={v}")
        if self.search:
            parts.append(f"search={self.search!r}")
        if self.selected:
            parts.append("selected")
        if self.heldout is not None:
            parts.append("held-out" if self.heldout else "in-sample")
        return " ".join(parts) or "all pairs"


# sortable columns of the list: name -> SQL expression
SORT_COLUMNS: dict[str, str] = {
    "pair_id": "p.pair_id",
    "subset": "p.subset",
    "split": "p.split",
    "margin_pre": "m.margin_pre",
    "margin_post": "m.margin_post",
    "regime": "m.regime",
    "gamma": "m.gamma",
    "theta": "m.theta",
    "heldout": "p.heldout",
    "tags": "tg.tags",
    "prompt": "p.context",
    "votes": "p.annotator_agreement",  # the share of annotators behind the pair's preference
}
DEFAULT_SORT = ("margin_post", False)  # ascending: most confidently wrong first

_FROM = (
    "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
    "LEFT JOIN (SELECT pair_id, string_agg(tag, ' ' ORDER BY tag) AS tags FROM triage "
    "           WHERE tag IS NOT NULL GROUP BY pair_id) tg ON tg.pair_id = p.pair_id "
)


def _where(filt: EntryFilter) -> tuple[str, list]:
    conds: list[str] = []
    params: list = []
    if filt.regime is not None:
        if filt.regime == "unscored":
            conds.append("(m.regime = 'unscored' OR m.regime IS NULL)")
        else:
            conds.append("m.regime = ?")
            params.append(filt.regime)
    if filt.gamma == GAMMA_NONE:
        conds.append("m.gamma IS NULL")
    for col, val in (("p.subset", filt.subset), ("p.split", filt.split),
                     ("m.gamma", None if filt.gamma == GAMMA_NONE else filt.gamma)):
        if val is not None:
            conds.append(f"{col} = ?")
            params.append(val)
    if filt.heldout is not None:
        conds.append("p.heldout = ?")
        params.append(bool(filt.heldout))
    if filt.human is not None:
        conds.append(f"({_CONSENSUS}) = ?")
        params.append(filt.human)
    if filt.tag is not None:
        conds.append("p.pair_id IN (SELECT pair_id FROM triage WHERE tag = ?)")
        params.append(filt.tag)
    if filt.selected:
        conds.append("p.pair_id IN (SELECT pair_id FROM selection)")
    if filt.search:
        conds.append("(p.context ILIKE ? OR p.chosen_response ILIKE ? OR p.rejected_response ILIKE ?)")
        pat = "%" + filt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds[-1] = conds[-1].replace("ILIKE ?", "ILIKE ? ESCAPE '\\'")
        params += [pat, pat, pat]
    if filt.feature:
        fz, name = split_feature_key(filt.feature)
        fz_cond = "AND fc.featurizer = ? AND fr.featurizer = fc.featurizer " if fz else "AND fr.featurizer = fc.featurizer "
        conds.append(
            "p.pair_id IN (SELECT pp.pair_id FROM pairs pp "
            "JOIN features fc ON fc.text_id = pp.chosen_text_id AND fc.name = ? "
            "JOIN features fr ON fr.text_id = pp.rejected_text_id AND fr.name = fc.name "
            f"{fz_cond}WHERE fc.value IS DISTINCT FROM fr.value)"
        )
        params.append(name)
        if fz:
            params.append(fz)
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def _order(sort: tuple[str, bool] | None) -> str:
    col, desc = sort or DEFAULT_SORT
    if col not in SORT_COLUMNS:
        raise RmtuiError(f"cannot sort by {col!r}; one of {', '.join(SORT_COLUMNS)}", "Sort")
    d = "DESC" if desc else "ASC"
    return f"ORDER BY {SORT_COLUMNS[col]} {d} NULLS LAST, p.pair_id {d}"


LIST_COLUMNS = ["pair_id", "subset", "split", "margin_pre", "margin_post", "regime", "gamma", "theta",
                "heldout", "tags", "selected", "prompt", "votes", "human"]
# the humans' votes as the list shows them ('2:1', '1:1:1' with tie votes; one label: 'A', 'B', 'tie') and
# the consensus class
_VOTES = ("CASE WHEN p.votes_a + p.votes_b + p.votes_tie = 1 THEN "
          "CASE WHEN p.votes_a = 1 THEN 'A' WHEN p.votes_b = 1 THEN 'B' ELSE 'tie' END "
          "WHEN p.votes_a IS NOT NULL THEN p.votes_a || ':' || p.votes_b || "
          "CASE WHEN p.votes_tie > 0 THEN ':' || p.votes_tie ELSE '' END WHEN p.human_tie THEN 'tie' END")


def count_entries(study: Study, filt: EntryFilter) -> int:
    where, params = _where(filt)
    return int(study.scalar(f"SELECT count(*) {_FROM}{where}", params))


def fetch_window(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None, offset: int,
                 limit: int) -> list[tuple]:
    """Rows ``offset .. offset+limit`` of the sorted, filtered list, as tuples in ``LIST_COLUMNS`` order.

    The sort runs on keys only; display columns (the prompt snippet, selection) are computed for the
    window's rows alone, so a page of 200 costs the same at any depth of a 160,000-row list.
    """
    where, params = _where(filt)
    sql = (
        f"WITH w AS (SELECT p.pair_id, row_number() OVER () AS rn FROM (SELECT p.pair_id {_FROM}{where} "
        f"{_order(sort)} LIMIT ? OFFSET ?) p) "
        "SELECT p.pair_id, p.subset, p.split, m.margin_pre, m.margin_post, m.regime, m.gamma, m.theta, "
        "p.heldout, tg.tags, s.pair_id IS NOT NULL AS selected, "
        "substr(trim(regexp_replace(list_extract(string_split(p.context, 'Human:'), -1), '\\s+', ' ', 'g')), 1, 160) "
        "AS prompt, " + _VOTES + " AS votes, " + _CONSENSUS + " AS human "
        "FROM w JOIN pairs p ON p.pair_id = w.pair_id LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
        "LEFT JOIN (SELECT pair_id, string_agg(tag, ' ' ORDER BY tag) AS tags FROM triage "
        "           WHERE tag IS NOT NULL GROUP BY pair_id) tg ON tg.pair_id = p.pair_id "
        "LEFT JOIN selection s ON s.pair_id = p.pair_id ORDER BY w.rn"
    )
    cur = study.cursor()
    try:
        return cur.execute(sql, params + [int(limit), int(offset)]).fetchall()
    finally:
        cur.close()


_ROW_SELECT = (
    "SELECT p.pair_id, p.subset, p.split, m.margin_pre, m.margin_post, m.regime, m.gamma, m.theta, "
    "p.heldout, tg.tags, s.pair_id IS NOT NULL AS selected, "
    "substr(trim(regexp_replace(list_extract(string_split(p.context, 'Human:'), -1), '\\s+', ' ', 'g')), 1, 160) "
    "AS prompt, " + _VOTES + " AS votes, " + _CONSENSUS + " AS human "
)


def sorted_ids(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None = None) -> list[str]:
    """Every pair id of the filter in list order: the app's list runs this once per filter or sort
    change and then fetches pages of rows by slicing it (:func:`fetch_rows`)."""
    where, params = _where(filt)
    col = (sort or DEFAULT_SORT)[0]
    src = _FROM if col == "tags" else "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
    cur = study.cursor()
    try:
        return [r[0] for r in cur.execute(f"SELECT p.pair_id {src}{where} {_order(sort)}", params).fetchall()]
    finally:
        cur.close()


def fetch_rows(study: Study, ids: Sequence[str]) -> list[tuple]:
    """List rows (``LIST_COLUMNS`` order) of the given pairs, in the order given."""
    if not ids:
        return []
    sql = (
        _ROW_SELECT
        + "FROM (SELECT unnest(?::VARCHAR[]) AS pair_id, unnest(range(1, ?)) AS rn) w "
        "JOIN pairs p ON p.pair_id = w.pair_id LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
        "LEFT JOIN (SELECT pair_id, string_agg(tag, ' ' ORDER BY tag) AS tags FROM triage "
        "           WHERE tag IS NOT NULL GROUP BY pair_id) tg ON tg.pair_id = p.pair_id "
        "LEFT JOIN selection s ON s.pair_id = p.pair_id ORDER BY w.rn"
    )
    cur = study.cursor()
    try:
        return cur.execute(sql, [list(ids), len(ids) + 1]).fetchall()
    finally:
        cur.close()


def pair_ids(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None = None) -> list[str]:
    where, params = _where(filt)
    return [r[0] for r in study.con.cursor().execute(
        f"SELECT p.pair_id {_FROM}{where} {_order(sort)}", params).fetchall()]


def position_of(study: Study, filt: EntryFilter, sort: tuple[str, bool] | None, pair_id: str) -> int | None:
    """Row index of a pair in the sorted, filtered list (None when it is not in it)."""
    where, params = _where(filt)
    sql = (f"SELECT rn FROM (SELECT p.pair_id, row_number() OVER ({_order(sort)}) - 1 AS rn {_FROM}{where}) "
           "WHERE pair_id = ?")
    v = study.scalar(sql, params + [pair_id])
    return None if v is None else int(v)


def list_values(study: Study) -> dict[str, list[str]]:
    """Choices for the filter dialog: subsets, splits, tags, features present in the study."""
    return {
        "regime": REGIMES,
        "subset": [r[0] for r in study.con.cursor().execute(
            "SELECT DISTINCT subset FROM pairs WHERE subset IS NOT NULL ORDER BY 1").fetchall()],
        "split": [r[0] for r in study.con.cursor().execute(
            "SELECT DISTINCT split FROM pairs WHERE split IS NOT NULL ORDER BY 1").fetchall()],
        "gamma": [r[0] for r in study.con.cursor().execute(
            f"SELECT DISTINCT coalesce(m.gamma, '{GAMMA_NONE}') FROM pairs p "
            "LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id ORDER BY 1").fetchall()],
        "tag": all_tags(study),
        "human": ["tie", "split", "unanimous", "single"],
        "feature": [f"{a}.{b}" for a, b in study.con.cursor().execute(
            "SELECT featurizer, name FROM feature_defs ORDER BY 1, 2").fetchall()],
    }


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
        row = _first(res)
        if row is None:
            raise RmtuiError(f"{study.path}: no pair {pair_id!r}", "Entry not found")
        pair = dict(zip([d[0] for d in res.description], row))
        res = cur.execute("SELECT * FROM pair_metrics WHERE pair_id = ?", [pair_id])
        mrow = _first(res)
        metrics = dict(zip([d[0] for d in res.description], mrow)) if mrow else None
        rewards = cur.execute(
            "SELECT mo.model_id, mo.name, mo.role, t.side, s.reward FROM models mo "
            "CROSS JOIN (VALUES ('chosen', ?), ('rejected', ?)) t(side, text_id) "
            "LEFT JOIN scores s ON s.model_id = mo.model_id AND s.text_id = t.text_id "
            "ORDER BY CASE mo.role WHEN 'pre' THEN 0 WHEN 'post' THEN 1 ELSE 2 END, mo.name, t.side",
            [pair["chosen_text_id"], pair["rejected_text_id"]],
        ).df()
        features = cur.execute(
            "SELECT d.featurizer, d.name, d.role, d.proxy, fc.value AS chosen, fr.value AS rejected "
            "FROM feature_defs d "
            "LEFT JOIN features fc ON fc.featurizer = d.featurizer AND fc.name = d.name AND fc.text_id = ? "
            "LEFT JOIN features fr ON fr.featurizer = d.featurizer AND fr.name = d.name AND fr.text_id = ? "
            "ORDER BY CASE d.role WHEN 'target' THEN 0 ELSE 1 END, d.featurizer, d.name",
            [pair["chosen_text_id"], pair["rejected_text_id"]],
        ).df()
        tags = [r[0] for r in cur.execute(
            "SELECT DISTINCT tag FROM triage WHERE pair_id = ? AND tag IS NOT NULL ORDER BY 1", [pair_id]).fetchall()]
        note = _first(cur.execute("SELECT note FROM triage WHERE pair_id = ? AND tag IS NULL LIMIT 1", [pair_id]))
        selected = _first(cur.execute("SELECT count(*) FROM selection WHERE pair_id = ?", [pair_id]))[0] > 0
        rewrites = cur.execute(
            "SELECT rewrite_id, side, rewriter, params, new_response, similarity, kept, created_at "
            "FROM rewrites WHERE pair_id = ? ORDER BY created_at, rewrite_id", [pair_id]).df()
    finally:
        cur.close()
    return Entry(pair_id, pair, metrics, rewards, features, tags, note[0] if note else None, selected, rewrites)


def models(study: Study) -> pd.DataFrame:
    return study.df("SELECT model_id, name, role, path_or_hub_id FROM models "
                    "ORDER BY CASE role WHEN 'pre' THEN 0 WHEN 'post' THEN 1 ELSE 2 END, name")


# -- triage -----------------------------------------------------------------------------------------
def all_tags(study: Study) -> list[str]:
    """Default tags first, then every other tag used in the study."""
    used = [r[0] for r in study.con.cursor().execute(
        "SELECT DISTINCT tag FROM triage WHERE tag IS NOT NULL ORDER BY 1").fetchall()]
    return DEFAULT_TAGS + [t for t in used if t not in DEFAULT_TAGS]


def tag_counts(study: Study) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in study.con.cursor().execute(
        "SELECT tag, count(DISTINCT pair_id) FROM triage WHERE tag IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()}


def _next_seq(cur) -> int:
    return int(_first(cur.execute("SELECT coalesce(max(seq), 0) + 1 FROM triage_log"))[0])


def _check_tag(tag: str) -> str:
    tag = (tag or "").strip()
    if not tag or len(tag) > 40 or any(c.isspace() for c in tag):
        raise RmtuiError(f"tag {tag!r}: use 1-40 characters without spaces (e.g. label-noise)", "Tag")
    return tag


def toggle_tag(study: Study, pair_id: str, tag: str) -> bool:
    """Add the tag to the pair, or remove it when present. Returns True when the tag is now on."""
    tag = _check_tag(tag)
    with study.transaction() as cur:
        seq = _next_seq(cur)
        have = _first(cur.execute("SELECT count(*) FROM triage WHERE pair_id = ? AND tag = ?", [pair_id, tag]))[0]
        if have:
            cur.execute("DELETE FROM triage WHERE pair_id = ? AND tag = ?", [pair_id, tag])
            cur.execute("INSERT INTO triage_log VALUES (?, ?, 'untag', ?, ?)", [seq, pair_id, tag, now()])
            return False
        cur.execute("INSERT INTO triage VALUES (?, ?, NULL, ?)", [pair_id, tag, now()])
        cur.execute("INSERT INTO triage_log VALUES (?, ?, 'tag', ?, ?)", [seq, pair_id, tag, now()])
        return True


def set_tags(study: Study, pair_id: str, tags: Iterable[str]) -> None:
    """Make the pair's tags exactly ``tags`` (one undoable action)."""
    want = {_check_tag(t) for t in tags}
    with study.transaction() as cur:
        seq = _next_seq(cur)
        have = {r[0] for r in cur.execute(
            "SELECT tag FROM triage WHERE pair_id = ? AND tag IS NOT NULL", [pair_id]).fetchall()}
        for t in sorted(have - want):
            cur.execute("DELETE FROM triage WHERE pair_id = ? AND tag = ?", [pair_id, t])
            cur.execute("INSERT INTO triage_log VALUES (?, ?, 'untag', ?, ?)", [seq, pair_id, t, now()])
        for t in sorted(want - have):
            cur.execute("INSERT INTO triage VALUES (?, ?, NULL, ?)", [pair_id, t, now()])
            cur.execute("INSERT INTO triage_log VALUES (?, ?, 'tag', ?, ?)", [seq, pair_id, t, now()])


def get_note(study: Study, pair_id: str) -> str | None:
    return study.scalar("SELECT note FROM triage WHERE pair_id = ? AND tag IS NULL LIMIT 1", [pair_id])


def set_note(study: Study, pair_id: str, note: str | None) -> None:
    """Set (or with an empty/None note, clear) the pair's note."""
    note = (note or "").strip() or None
    with study.transaction() as cur:
        seq = _next_seq(cur)
        old = _first(cur.execute("SELECT note FROM triage WHERE pair_id = ? AND tag IS NULL LIMIT 1", [pair_id]))
        cur.execute("DELETE FROM triage WHERE pair_id = ? AND tag IS NULL", [pair_id])
        if note is not None:
            cur.execute("INSERT INTO triage VALUES (?, NULL, ?, ?)", [pair_id, note, now()])
        cur.execute("INSERT INTO triage_log VALUES (?, ?, 'note', ?, ?)",
                    [seq, pair_id, json.dumps(old[0] if old else None), now()])


def _ids_frame(ids: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": pd.Series(list(ids), dtype=object)})


def select(study: Study, pair_ids: Sequence[str] | None = None, *, filt: EntryFilter | None = None,
           mode: str = "select") -> int:
    """Select / unselect / toggle pairs (given ids or every pair of a filter). Returns how many changed."""
    if mode not in ("select", "unselect", "toggle"):
        raise ValueError(mode)
    with study.transaction() as cur:
        seq = _next_seq(cur)
        if filt is not None:
            where, params = _where(filt)
            cur.execute(f"CREATE OR REPLACE TEMP TABLE _sel_ids AS SELECT p.pair_id {_FROM}{where}", params)
        else:
            cur.register("_sel_src", _ids_frame(pair_ids or []))
            cur.execute("CREATE OR REPLACE TEMP TABLE _sel_ids AS SELECT DISTINCT pair_id FROM _sel_src")
            cur.unregister("_sel_src")
        ts = now()
        n = 0
        if mode in ("unselect", "toggle"):
            cur.execute("CREATE OR REPLACE TEMP TABLE _sel_off AS SELECT pair_id FROM _sel_ids "
                        "SEMI JOIN selection USING (pair_id)")
        if mode in ("select", "toggle"):
            cur.execute("CREATE OR REPLACE TEMP TABLE _sel_on AS SELECT pair_id FROM _sel_ids "
                        "ANTI JOIN selection USING (pair_id)")
        if mode in ("unselect", "toggle"):
            n += _first(cur.execute("SELECT count(*) FROM _sel_off"))[0]
            cur.execute("DELETE FROM selection WHERE pair_id IN (SELECT pair_id FROM _sel_off)")
            cur.execute("INSERT INTO triage_log SELECT ?, pair_id, 'unselect', NULL, ? FROM _sel_off", [seq, ts])
        if mode in ("select", "toggle"):
            n += _first(cur.execute("SELECT count(*) FROM _sel_on"))[0]
            cur.execute("INSERT INTO selection SELECT pair_id FROM _sel_on")
            cur.execute("INSERT INTO triage_log SELECT ?, pair_id, 'select', NULL, ? FROM _sel_on", [seq, ts])
        for t in ("_sel_ids", "_sel_on", "_sel_off"):
            cur.execute(f"DROP TABLE IF EXISTS {t}")
    return int(n)


def selection_count(study: Study) -> int:
    return int(study.scalar("SELECT count(*) FROM selection"))


def selected_ids(study: Study) -> list[str]:
    return [r[0] for r in study.con.cursor().execute("SELECT pair_id FROM selection ORDER BY pair_id").fetchall()]


def undo_last(study: Study) -> str | None:
    """Revert the last triage action (tag, untag, note, select, unselect). Returns what was undone."""
    with study.transaction() as cur:
        seq = _first(cur.execute("SELECT max(seq) FROM triage_log"))[0]
        if seq is None:
            return None
        rows = cur.execute("SELECT pair_id, action, value FROM triage_log WHERE seq = ?", [seq]).fetchall()
        ts = now()
        actions = {}
        for pid, action, value in rows:
            actions[action] = actions.get(action, 0) + 1
            if action == "tag":
                cur.execute("DELETE FROM triage WHERE pair_id = ? AND tag = ?", [pid, value])
            elif action == "untag":
                cur.execute("INSERT INTO triage VALUES (?, ?, NULL, ?)", [pid, value, ts])
            elif action == "note":
                old = json.loads(value) if value else None
                cur.execute("DELETE FROM triage WHERE pair_id = ? AND tag IS NULL", [pid])
                if old is not None:
                    cur.execute("INSERT INTO triage VALUES (?, NULL, ?, ?)", [pid, old, ts])
        if "select" in actions:
            cur.execute("DELETE FROM selection WHERE pair_id IN "
                        "(SELECT pair_id FROM triage_log WHERE seq = ? AND action = 'select')", [seq])
        if "unselect" in actions:
            cur.execute("INSERT INTO selection SELECT pair_id FROM triage_log WHERE seq = ? AND action = 'unselect' "
                        "AND pair_id NOT IN (SELECT pair_id FROM selection)", [seq])
        cur.execute("DELETE FROM triage_log WHERE seq = ?", [seq])
    if len(rows) == 1:
        pid, action, value = rows[0]
        what = {"tag": f"tag {value}", "untag": f"untag {value}", "note": "note", "select": "select",
                "unselect": "unselect"}[action]
        return f"undid {what} on {pid[:8]}"
    return "undid " + ", ".join(f"{a} of {n:,} pairs" for a, n in actions.items())


# -- fit tables -------------------------------------------------------------------------------------
def latest_fit(study: Study) -> dict | None:
    cur = study.cursor()
    try:
        res = cur.execute("SELECT * FROM fits WHERE fit_id IN (SELECT DISTINCT fit_id FROM imprint) "
                          "ORDER BY created_at DESC, fit_id DESC LIMIT 1")
        row = _first(res)
        return dict(zip([d[0] for d in res.description], row)) if row else None
    finally:
        cur.close()


def imprint_table(study: Study, fit_id: str | None = None) -> pd.DataFrame:
    """The imprint rows of a fit (latest by default), intercept left out; with feature role and proxy."""
    if fit_id is None:
        fit = latest_fit(study)
        if fit is None:
            return pd.DataFrame(columns=["target", "feature", "estimate", "se", "ci_low", "ci_high", "p",
                                         "p_bonferroni", "n", "se_type", "r2", "role", "proxy"])
        fit_id = fit["fit_id"]
    return study.df(
        "SELECT i.target, i.feature, i.estimate, i.se, i.ci_low, i.ci_high, i.p, i.p_bonferroni, i.n, "
        "i.se_type, i.r2, d.role, d.proxy FROM imprint i "
        "LEFT JOIN feature_defs d ON (d.featurizer || '.' || d.name) = i.feature OR "
        "   (d.name = i.feature AND position('.' IN i.feature) = 0) "
        "WHERE i.fit_id = ? AND lower(i.feature) NOT IN ('(intercept)', 'intercept', 'const', '_cons') "
        "ORDER BY i.target, i.feature", [fit_id])


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
    where, params = _where(filt)
    src = f"SELECT p.*, m.regime, m.gamma {_FROM}{where}"
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


def regime_table(study: Study, by: str | None = None) -> pd.DataFrame:
    """Pairs per regime, overall or by ``gamma`` / ``subset`` / ``split``: long frame [group, regime, n]."""
    group = {"gamma": f"coalesce(m.gamma, '{GAMMA_NONE}')", "subset": "p.subset", "split": "p.split", None: "'all'"}[by]
    return study.df(
        f"SELECT {group} AS grp, coalesce(m.regime, 'unscored') AS regime, count(*) AS n "
        "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
        "WHERE NOT coalesce(p.human_tie, FALSE) GROUP BY ALL ORDER BY 1, 2")  # human ties: no winner, no regime


def agreement(study: Study) -> dict:
    """Agreement of the pre-D and post-D RMs with the human labels, as stored in pair_metrics, with
    ``rmtui summary``'s two definitions: ``pre``/``post`` = agree / scored (a tie is not agreement),
    ``pre_decided``/``post_decided`` = agree / (agree + disagree)."""
    def share(role: str) -> str:
        return (f"count(*) FILTER (WHERE agree_{role})::DOUBLE "
                f"/ nullif(count(*) FILTER (WHERE agree_{role} IS NOT NULL OR tie_{role}), 0)")

    row = _first(study.con.cursor().execute(
        f"SELECT count(*), {share('pre')}, {share('post')}, count(*) FILTER (WHERE tie_pre), "
        "count(*) FILTER (WHERE tie_post), count(agree_pre), count(agree_post), avg(agree_pre::DOUBLE), "
        "avg(agree_post::DOUBLE) FROM pair_metrics"))
    return {"n": int(row[0]), "pre": row[1], "post": row[2], "ties_pre": int(row[3]), "ties_post": int(row[4]),
            "n_pre": int(row[5]), "n_post": int(row[6]), "pre_decided": row[7], "post_decided": row[8],
            "human_ties": int(study.scalar("SELECT count(*) FROM pairs WHERE human_tie")),
            "split_votes": int(study.scalar(f"SELECT count(*) FROM pairs p WHERE ({_CONSENSUS}) = 'split'"))}


def has_votes(study: Study) -> bool:
    """Whether any pair has human votes or is a human tie (the list shows its votes column then)."""
    return bool(study.scalar("SELECT count(*) FROM pairs WHERE votes_a IS NOT NULL OR human_tie"))


# -- export reads -----------------------------------------------------------------------------------
def export_frames(study: Study, ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Everything the export writes about the given pairs, as frames keyed by pair_id."""
    cur = study.cursor()
    try:
        cur.register("_exp_ids", _ids_frame(ids))
        out = {
            "pairs": cur.execute(
                "SELECT p.pair_id, p.dataset, p.subset, p.split, p.heldout, p.context, p.chosen_response, "
                "p.rejected_response, p.chosen_text_id, p.rejected_text_id, m.reward_chosen_pre, "
                "m.reward_rejected_pre, m.reward_chosen_post, m.reward_rejected_post, m.margin_pre, "
                "m.margin_post, m.regime, m.gamma, m.theta, m.confusing, m.fit_id, "
                "p.preference, p.human_tie, p.label_raw, p.votes_a, p.votes_b, p.votes_tie, p.annotator_agreement, "
                "p.human_margin, p.dimension, p.source_item "
                "FROM _exp_ids i JOIN pairs p USING (pair_id) LEFT JOIN pair_metrics m USING (pair_id)").df(),
            "rewards": cur.execute(
                "SELECT p.pair_id, t.side, mo.name AS model, mo.role, s.reward FROM _exp_ids i "
                "JOIN texts t USING (pair_id) JOIN pairs p USING (pair_id) "
                "JOIN scores s ON s.text_id = t.text_id JOIN models mo ON mo.model_id = s.model_id "
                "ORDER BY 1, 2, 4, 3").df(),
            "features": cur.execute(
                "SELECT t.pair_id, t.side, f.featurizer || '.' || f.name AS feature, f.value FROM _exp_ids i "
                "JOIN texts t USING (pair_id) JOIN features f ON f.text_id = t.text_id ORDER BY 1, 2, 3").df(),
            "triage": cur.execute(
                "SELECT t.pair_id, t.tag, t.note FROM _exp_ids i JOIN triage t USING (pair_id) "
                "ORDER BY 1, 2").df(),
            "rewrites": cur.execute(
                "SELECT r.pair_id, r.rewrite_id, r.side, r.rewriter, r.params, r.new_response, r.similarity, "
                "r.kept FROM _exp_ids i JOIN rewrites r USING (pair_id) ORDER BY 1, 2").df(),
            "rewrite_rewards": cur.execute(
                "SELECT r.rewrite_id, mo.name AS model, mo.role, s.reward FROM _exp_ids i "
                "JOIN rewrites r USING (pair_id) JOIN scores s ON s.text_id = r.new_text_id "
                "JOIN models mo ON mo.model_id = s.model_id ORDER BY 1, 3, 2").df(),
        }
        cur.unregister("_exp_ids")
    finally:
        cur.close()
    return out


def study_metadata(study: Study) -> dict:
    """Models, featurizers, latest fit (SE type, n) and study keys, JSON-able."""
    fit = latest_fit(study)
    return {
        "study": str(study.path),
        "meta": {k: v for k, v in study.con.cursor().execute("SELECT key, value FROM study ORDER BY 1").fetchall()},
        "models": study.df("SELECT model_id, name, role, path_or_hub_id, revision, format, dtype FROM models "
                           "ORDER BY role, name").to_dict("records"),
        "featurizers": study.df("SELECT featurizer, version, config FROM featurizers ORDER BY 1").to_dict("records"),
        "feature_defs": study.df("SELECT featurizer, name, kind, role, proxy FROM feature_defs ORDER BY 1, 2")
        .to_dict("records"),
        "fit": None if fit is None else {k: (str(v) if k == "created_at" else v) for k, v in fit.items()
                                         if k in ("fit_id", "kind", "created_at", "se_type", "n", "pre_model_id",
                                                  "post_model_id")},
    }
