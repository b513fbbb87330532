"""The regime screen: its counts, totals and mis% are the study's (hand-counted from pair_metrics)."""

from __future__ import annotations

from types import SimpleNamespace

from analysis.metrics.regime_names import REGIMES, regime_grid
from analysis.store import open_study

from .test_app import make_app, settle, study_file, synth_template  # noqa: F401  (fixtures)


def test_regime_grid_counts_decided_and_misaligned():
    rows = [SimpleNamespace(grp=g, regime=r, n=n) for g, r, n in [
        ("b", "stayed_aligned", 5), ("b", "resists_alignment", 2), ("b", "tie", 3),
        ("a", "reversed", 1), ("a", "got_aligned", 3), ("a", "unscored", 4), (None, "stayed_aligned", 9)]]
    grid = regime_grid(rows)
    assert grid.regimes == ["stayed_aligned", "got_aligned", "resists_alignment", "reversed", "tie", "unscored"]
    a, b = grid.rows
    assert (a.group, a.total, a.decided, a.misaligned) == ("a", 8, 4, 1)
    assert (b.group, b.total, b.decided, b.misaligned) == ("b", 10, 7, 2)
    assert a.misaligned_pct == 25.0 and b.misaligned_pct == 100 * 2 / 7
    assert b.pct("tie") == 30.0 and b.pct("reversed") == 0.0
    only_ties = regime_grid([SimpleNamespace(grp="x", regime="tie", n=2)])
    assert only_ties.regimes == ["tie"] and only_ties.rows[0].misaligned_pct is None


async def test_regime_screen_shows_the_hand_counted_table(study_file):
    from textual.widgets import DataTable

    from rmtui.screens.regimes import RegimeScreen

    with open_study(study_file, read_only=True) as st:
        m = st.df("SELECT coalesce(m.gamma, 'none') AS gamma, coalesce(m.regime, 'unscored') AS regime "
                  "FROM pairs p LEFT JOIN pair_metrics m USING (pair_id)")
    app = make_app(study_file)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, RegimeScreen)
        t = app.screen.query_one("#t-gamma", DataTable)
        cols = [str(c.value) for c in t.columns]
        present = [r for r in REGIMES if r in set(m["regime"])]
        assert cols == ["grp", *present, "total", "mis"]
        for g in sorted(set(m["gamma"])):
            sub = m[m["gamma"] == g]
            cells = [c.plain for c in t.get_row(g)]
            counts = [int((sub["regime"] == r).sum()) for r in present]
            assert cells[1:1 + len(present)] == [f"{n:,}" for n in counts]
            assert cells[-2] == f"{len(sub):,}"
            decided = int(sub["regime"].isin(REGIMES[:4]).sum())
            mis = int(sub["regime"].isin(["resists_alignment", "reversed"]).sum())
            assert cells[-1] == (f"{100 * mis / decided:.1f}" if decided else "-")
