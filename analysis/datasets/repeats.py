"""Repeated judgments of one item become one pair with its votes.

Expert-judgment sets judge the same prompt and the same two responses several times (other judges,
the two responses shown in either order). Stored as independent pairs they count an item several
times and hide that the judges disagreed. After an ingest, the pairs of the source that share subset,
split, dimension and both texts (either order) are folded into the first of them (its row, its id):
every record's votes are added, oriented to that pair's A and B (a record without votes is one vote
for its label), the majority decides (no strict majority is a tie, as for annotator votes), and
``n_records``, ``merged_rows`` and ``records_disagree`` say what was merged. Re-reading a row already
merged adds nothing.

Pure logic over the store's rows (:func:`analysis.store.pairs.repeat_members`); the store writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.datasets.shapes import majority


@dataclass
class MergeResult:
    updates: pd.DataFrame
    deletes: list[str]
    n_merged: int = 0           # records folded into an earlier pair (new in this ingest)
    n_repeated_items: int = 0   # pairs that now hold several records
    n_conflicting: int = 0      # of those, items whose records' own labels differ


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _votes(r) -> tuple[int, int, int]:
    va, vb, vt = _int(r.votes_a), _int(r.votes_b), _int(r.votes_tie)
    if va is None:
        return (int(r.preference == "a"), int(r.preference == "b"), int(r.preference == "tie"))
    return va, vb or 0, vt or 0


def _a_is_chosen(r) -> bool:
    v = r.a_is_chosen
    return True if v is None or pd.isna(v) else bool(v)


def _a_text(r) -> str:
    return r.chosen_text_id if _a_is_chosen(r) else r.rejected_text_id


def _rows(r) -> list[int]:
    if isinstance(r.merged_rows, str) and r.merged_rows:
        return [int(x) for x in r.merged_rows.split(",")]
    return [int(r.source_row)]


def plan_merges(members: pd.DataFrame, ingest_id: int) -> MergeResult:
    """What to write for the repeated items of one source, ``members`` from ``repeat_members``."""
    updates, deletes = [], []
    res = MergeResult(pd.DataFrame(), deletes)
    for _, g in members.groupby("grp", sort=True):
        g = g.assign(is_new=g["ingest_id"] == ingest_id).sort_values(["is_new", "source_row", "pair_id"])
        rows = list(g.itertuples(index=False))
        keeper = rows[0]
        a_tid = _a_text(keeper)
        va, vb, vt = _votes(keeper)
        covered = set(_rows(keeper))
        classes = {keeper.preference}
        n_rec = _int(keeper.n_records) or 1
        added = False
        for r in rows[1:]:
            deletes.append(r.pair_id)
            mine = _rows(r)
            if r.is_new and set(mine) <= covered:  # this row was merged by an earlier ingest: no new votes
                continue
            added = True
            a, b, t = _votes(r)
            if _a_text(r) != a_tid:
                a, b = b, a
            own = r.preference if _a_text(r) == a_tid else {"a": "b", "b": "a"}.get(r.preference, r.preference)
            classes.add(own)
            va, vb, vt = va + a, vb + b, vt + t
            covered |= set(mine)
            n_rec += _int(r.n_records) or 1
            if r.is_new:
                res.n_merged += 1
        if not added:  # only re-read rows: the pair already holds their votes
            continue
        pref = majority(va, vb, vt)
        new_a_is_chosen = pref != "b"
        old_a_is_chosen = _a_is_chosen(keeper)
        disagree = len(classes) > 1 or (not pd.isna(keeper.records_disagree) and bool(keeper.records_disagree))
        rows_s = ",".join(str(x) for x in sorted(covered))
        updates.append({
            "pair_id": keeper.pair_id, "swap": new_a_is_chosen != old_a_is_chosen,
            "votes_a": va, "votes_b": vb, "votes_tie": vt, "preference": pref, "human_tie": pref == "tie",
            "a_is_chosen": new_a_is_chosen, "annotator_agreement": max(va, vb, vt) / max(va + vb + vt, 1),
            "label_raw": f"{n_rec} records (rows {rows_s})"[:200], "n_records": n_rec, "merged_rows": rows_s,
            "records_disagree": disagree,
        })
        res.n_repeated_items += 1
        res.n_conflicting += int(disagree)
    res.updates = pd.DataFrame(updates, columns=[
        "pair_id", "swap", "votes_a", "votes_b", "votes_tie", "preference", "human_tie", "a_is_chosen",
        "annotator_agreement", "label_raw", "n_records", "merged_rows", "records_disagree"])
    return res
