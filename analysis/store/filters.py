"""What the entry list shows: :class:`EntryFilter`, its WHERE clause and the sort orders.

The list, the selection of a filter's pairs, the export and the frequency counts all filter with
:func:`where_clause` over ``LIST_FROM`` (pairs, their metrics and their tags), so one filter means the
same pairs everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.store.features import split_feature_key
from analysis.store.pairs import CONSENSUS_SQL as _CONSENSUS

GAMMA_NONE = "none"  # the filter and regime-table value of pairs with no γ (no features of the kind γ needs)


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
    "suspect": "m.suspect_score",   # suspected label error (analysis/metrics/suspect.py); sort descending
    "votes": "p.annotator_agreement",  # the share of annotators behind the pair's preference
}
DEFAULT_SORT = ("margin_post", False)  # ascending: most confidently wrong first

LIST_FROM = (
    "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
    "LEFT JOIN (SELECT pair_id, string_agg(tag, ' ' ORDER BY tag) AS tags FROM triage "
    "           WHERE tag IS NOT NULL GROUP BY pair_id) tg ON tg.pair_id = p.pair_id "
)


def where_clause(filt: EntryFilter) -> tuple[str, list]:
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


def order_clause(sort: tuple[str, bool] | None) -> str:
    col, desc = sort or DEFAULT_SORT
    if col not in SORT_COLUMNS:
        raise RmtuiError(f"cannot sort by {col!r}; one of {', '.join(SORT_COLUMNS)}", "Sort")
    d = "DESC" if desc else "ASC"
    return f"ORDER BY {SORT_COLUMNS[col]} {d} NULLS LAST, p.pair_id {d}"


def ids_frame(ids: Sequence[str]) -> pd.DataFrame:
    """Pair ids as a one-column frame to register in a query."""
    return pd.DataFrame({"pair_id": pd.Series(list(ids), dtype=object)})
