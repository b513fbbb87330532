"""Triage: tags, notes and the selection, each action undoable.

Triage lives in ``triage(pair_id, tag, note, updated_at)``: one row per tag (``note`` NULL) and at most
one note row per pair (``tag`` NULL). Every triage action appends rows to ``triage_log`` under one
``seq`` (a bulk select of 160,000 pairs is one seq), so :func:`undo_last` reverts exactly the last
action. Each action is one transaction: it is on disk when the call returns.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from analysis.errors import RmtuiError
from analysis.store.core import Study, first_row, now
from analysis.store.filters import LIST_FROM, EntryFilter, ids_frame, where_clause

DEFAULT_TAGS = ["label-noise", "rm-error", "ambiguous", "interesting"]


def all_tags(study: Study) -> list[str]:
    """Default tags first, then every other tag used in the study."""
    used = [r[0] for r in study.con.cursor().execute(
        "SELECT DISTINCT tag FROM triage WHERE tag IS NOT NULL ORDER BY 1").fetchall()]
    return DEFAULT_TAGS + [t for t in used if t not in DEFAULT_TAGS]


def tag_counts(study: Study) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in study.con.cursor().execute(
        "SELECT tag, count(DISTINCT pair_id) FROM triage WHERE tag IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()}


def _next_seq(cur) -> int:
    return int(first_row(cur.execute("SELECT coalesce(max(seq), 0) + 1 FROM triage_log"))[0])


def _check_tag(tag: str) -> str:
    tag = (tag or "").strip()
    if not tag or len(tag) > 40 or any(c.isspace() for c in tag):
        from analysis.textsafe import visible_line

        shown = visible_line(tag if len(tag) <= 50 else tag[:47] + "...")
        why = ("is empty" if not tag else f"has {len(tag)} characters, more than 40" if len(tag) > 40
               else "has a space in it")
        raise RmtuiError(f"tag {shown!r} {why}: a tag is 1-40 characters without spaces (e.g. label-noise); "
                         "shorten it and tag again (a note, key n, takes any text)", "Tag not valid")
    return tag


def toggle_tag(study: Study, pair_id: str, tag: str) -> bool:
    """Add the tag to the pair, or remove it when present. Returns True when the tag is now on."""
    tag = _check_tag(tag)
    with study.transaction() as cur:
        seq = _next_seq(cur)
        have = first_row(cur.execute("SELECT count(*) FROM triage WHERE pair_id = ? AND tag = ?", [pair_id, tag]))[0]
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
        old = first_row(cur.execute("SELECT note FROM triage WHERE pair_id = ? AND tag IS NULL LIMIT 1", [pair_id]))
        cur.execute("DELETE FROM triage WHERE pair_id = ? AND tag IS NULL", [pair_id])
        if note is not None:
            cur.execute("INSERT INTO triage VALUES (?, NULL, ?, ?)", [pair_id, note, now()])
        cur.execute("INSERT INTO triage_log VALUES (?, ?, 'note', ?, ?)",
                    [seq, pair_id, json.dumps(old[0] if old else None), now()])


def select(study: Study, pair_ids: Sequence[str] | None = None, *, filt: EntryFilter | None = None,
           mode: str = "select") -> int:
    """Select / unselect / toggle pairs (given ids or every pair of a filter). Returns how many changed."""
    if mode not in ("select", "unselect", "toggle"):
        raise ValueError(mode)
    with study.transaction() as cur:
        seq = _next_seq(cur)
        if filt is not None:
            where, params = where_clause(filt)
            cur.execute(f"CREATE OR REPLACE TEMP TABLE _sel_ids AS SELECT p.pair_id {LIST_FROM}{where}", params)
        else:
            cur.register("_sel_src", ids_frame(pair_ids or []))
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
            n += first_row(cur.execute("SELECT count(*) FROM _sel_off"))[0]
            cur.execute("DELETE FROM selection WHERE pair_id IN (SELECT pair_id FROM _sel_off)")
            cur.execute("INSERT INTO triage_log SELECT ?, pair_id, 'unselect', NULL, ? FROM _sel_off", [seq, ts])
        if mode in ("select", "toggle"):
            n += first_row(cur.execute("SELECT count(*) FROM _sel_on"))[0]
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
        seq = first_row(cur.execute("SELECT max(seq) FROM triage_log"))[0]
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
