"""End to end: an A/B file with three annotators and ties is ingested, scored by two real (tiny) RMs,
fit, and opened in the app: tie counts, votes, and agreement that leaves the ties out."""

from __future__ import annotations

from tests.helpers.app import wait_idle

import json

from typer.testing import CliRunner

from analysis.store import open_study
from analysis.store.filters import EntryFilter
from rmtui.cli import app as cli

VOTES = [(1, 1, 1), (1, 1, 2), (2, 2, 2), (2, 1, 2), (1, 2, 0), (0, 0, 0), (1, 1, 0), (2, 2, 1)]
# majority: a, a, b, b, tie (no majority), tie, a, b


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


async def test_ab_with_ties_from_file_to_app(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    from rmtui.app import RmtuiApp
    from rmtui.widgets.entry_list import EntryList

    f = tmp_path / "pairwise-test.jsonl"
    f.write_text("\n".join(json.dumps({
        "instruction": f"Question {i}: what is {i} plus {i}?", "input": "" if i % 2 else f"Context {i}.",
        "response1": f"It is {2 * i}, since {i} and {i} make {2 * i}.", "response2": f"Maybe {i}.",
        "annotator1": v[0], "annotator2": v[1], "annotator3": v[2]}) for i, v in enumerate(VOTES)) + "\n")
    study = tmp_path / "s.duckdb"
    out = run("ingest", f, "--study", study, "--map",
              "prompt=instruction+input,a=response1,b=response2,label=annotator1,annotator2,annotator3",
              "--label", "a=1,b=2,tie=0")
    assert "read 8 pairs" in out and "2 human ties" in out and "4 split votes" in out
    run("score", "--study", study, "--model", tiny_rm_dir, "--role", "pre", "--max-length", "64")
    run("score", "--study", study, "--model", tiny_rm_dir_b, "--role", "post", "--max-length", "64")
    out = run("fit", "--study", study)
    summary = json.loads(run("summary", "--study", study, "--json"))
    agr = {r["role"]: r for r in summary["agreement"] if r["group"] == "all"}
    assert agr["pre"]["n"] == 6 and agr["post"]["n"] == 6  # 8 pairs, 2 human ties left out
    assert summary["human"]["ties"] == 2 and summary["human"]["split"] == 4
    assert sum(r["n"] for r in summary["regimes"]) == 6
    with open_study(study, read_only=True) as st:
        pm = st.df("SELECT p.source_row, m.agree_pre FROM pair_metrics m JOIN pairs p USING (pair_id)")
        assert sorted(pm["source_row"]) == [1, 2, 3, 4, 7, 8]
    text = run("summary", "--study", study)
    assert "human ties: 2 pairs" in text

    app = RmtuiApp(study, keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        el = app.screen.query_one(EntryList)
        await pilot.press("x")  # all pairs
        await wait_idle(pilot)
        assert el.total == 8
        assert "votes" in [c.key for c, _ in el.visible_columns()]
        shown = {el.value(i, "votes") for i in range(el.total)}
        assert {"3:0", "2:1", "1:1:1", "0:0:3", "2:0:1"} <= shown
        header = el.header_text().plain
        assert "votes" in header
        app.screen.apply_filter(EntryFilter(regime=None, human="tie"))
        await wait_idle(pilot)
        assert el.total == 2
        await pilot.press("enter")  # a tie in the entry view: neither side is called preferred
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        assert "A (humans: tie)" in str(app.screen.query_one("#chosen-title").render())
        head = str(app.screen.query_one("#entry-head").render())
        assert "HUMAN TIE" in head and "votes A" in head
        await pilot.press("escape")
        await wait_idle(pilot)
        app.screen.apply_filter(EntryFilter(regime=None, human="split"))
        await wait_idle(pilot)
        assert el.total == 4
        await pilot.press("m")  # the regime screen
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        line = str(app.screen.query_one("#agreement").render())
        assert "human ties 2 (left out)" in line and "6 pairs with metrics" in line
