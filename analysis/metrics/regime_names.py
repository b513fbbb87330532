"""The names of the regimes and of gamma, and the regime table's counts (no pandas, cheap to import).

A pair's regime comes from whether the pre-D and the post-D RM agree with the human label:
stayed_aligned (1,1), got_aligned (0,1), resists_alignment (0,0), reversed (1,0); ``tie`` when either
RM tied, ``unscored`` when either has not scored it. The first four are the *decided* regimes; in
the two *misaligned* ones the post-D RM prefers the rejected side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

REGIMES = ["stayed_aligned", "got_aligned", "resists_alignment", "reversed", "tie", "unscored"]
DECIDED = REGIMES[:4]
MISALIGNED = ("resists_alignment", "reversed")
GAMMAS = ["c", "i", "r"]


@dataclass
class RegimeRow:
    """One group of the regime table: pairs per regime, their total, and the decided/misaligned counts."""

    group: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def decided(self) -> int:
        return sum(self.counts.get(r, 0) for r in DECIDED)

    @property
    def misaligned(self) -> int:
        return sum(self.counts.get(r, 0) for r in MISALIGNED)

    @property
    def misaligned_pct(self) -> float | None:
        """Misaligned pairs, % of the decided ones (None when none is decided)."""
        return 100 * self.misaligned / self.decided if self.decided else None

    def pct(self, regime: str) -> float | None:
        """Pairs in ``regime``, % of the group's pairs."""
        return 100 * self.counts.get(regime, 0) / self.total if self.total else None


@dataclass
class RegimeGrid:
    regimes: list[str]      # the regimes that occur, in REGIMES order
    rows: list[RegimeRow]   # one per group, sorted by group


def regime_grid(counts: Iterable[Any]) -> RegimeGrid:
    """The regime table from long counts: rows with ``grp``, ``regime``, ``n`` (a DataFrame's
    itertuples, as ``store.entries.regime_counts`` returns). Rows without a group are left out."""
    by_group: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for r in counts:
        grp, regime, n = r.grp, r.regime, int(r.n)
        seen.add(regime)
        if grp is None or grp != grp:  # NULL group (NaN from a DataFrame)
            continue
        cell = by_group.setdefault(str(grp), {})
        cell[regime] = cell.get(regime, 0) + n
    return RegimeGrid([r for r in REGIMES if r in seen],
                      [RegimeRow(g, by_group[g]) for g in sorted(by_group)])
