"""The explore app, its store queries, export and the synthetic study, driven by keys via App.run_test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from analysis.errors import RmtuiError
from analysis.store import open_study
from analysis.store import entries, filters, triage
from analysis.store import metrics as store_metrics
from analysis.store.filters import EntryFilter
from analysis.datasets.synth import make_synthetic_study

N_PAIRS = 300
SEED = 7


@pytest.fixture(scope="session")
def synth_template(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("synth") / "study.duckdb"
    make_synthetic_study(p, N_PAIRS, seed=SEED)
    return p


@pytest.fixture
def study_file(synth_template, tmp_path) -> Path:
    """A fresh copy of the synthetic study, named study.duckdb (the name shows in the header)."""
    d = tmp_path / "s"
    d.mkdir()
    p = d / "study.duckdb"
    shutil.copy(synth_template, p)
    return p


def make_app(path, **kw):
    from rmtui.app import RmtuiApp

    kw.setdefault("keymap", Path(path).parent / "no-keymap.toml")
    return RmtuiApp(path, **kw)


async def settle(pilot, n=3):
    """Let the app finish what the keys started: its workers (list reloads, counts, triage) and the
    messages they post, until it is idle (tests/helpers/app.py: wait_idle)."""
    from tests.helpers.app import wait_idle

    await wait_idle(pilot, n)


# -- synthetic study ----------------------------------------------------------------------------------
def test_synth_is_deterministic_and_recovers_planted_imprint(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    make_synthetic_study(a, 2000, seed=3)
    make_synthetic_study(b, 2000, seed=3)
    with open_study(a, read_only=True) as sa, open_study(b, read_only=True) as sb:
        for table in ("pairs", "pair_metrics", "scores", "features", "imprint"):
            da = sa.df(f"SELECT * FROM {table} ORDER BY ALL")
            db = sb.df(f"SELECT * FROM {table} ORDER BY ALL")
            pd.testing.assert_frame_equal(da, db)
        counts = sa.table_counts()
        for t in ("pairs", "texts", "models", "scores", "features", "feature_defs", "fits", "imprint",
                  "pair_metrics"):
            assert counts[t] > 0, t
        imp = store_metrics.imprint_table(sa)
        post = imp[imp.target == "post"].set_index("feature")
        # planted post-D harmless +2.1, helpful +1.1: inside the 95 % interval
        for feat, planted in (("synth.harmless", 2.1), ("synth.helpful", 1.1)):
            assert post.loc[feat, "ci_low"] < planted < post.loc[feat, "ci_high"], feat
        # regimes follow the margins
        m = sa.df("SELECT margin_pre, margin_post, regime FROM pair_metrics")
        res = m[m.regime == "resists_alignment"]
        assert (res.margin_pre < 0).all() and (res.margin_post < 0).all()
        got = m[m.regime == "got_aligned"]
        assert (got.margin_pre < 0).all() and (got.margin_post > 0).all()


# -- store: entries, triage, the fit as the app shows it -----------------------------------------------
def test_windows_are_sorted_filtered_and_complete(study_file):
    with open_study(study_file) as st:
        filt = EntryFilter()  # resists_alignment
        n = entries.count_entries(st, filt)
        expected = st.df("SELECT pair_id, margin_post FROM pair_metrics WHERE regime = 'resists_alignment' "
                         "ORDER BY margin_post, pair_id")
        assert n == len(expected) > 10
        rows = entries.fetch_window(st, filt, None, 0, 7) + entries.fetch_window(st, filt, None, 7, n)
        assert [r[0] for r in rows] == list(expected.pair_id)
        assert rows[0][4] == expected.margin_post.min()  # most confidently wrong first
        desc = entries.fetch_window(st, filt, ("margin_pre", True), 0, 3)
        assert desc[0][3] == st.scalar("SELECT max(margin_pre) FROM pair_metrics WHERE regime='resists_alignment'")
        # feature filter: pairs whose chosen and rejected differ on the feature
        f = EntryFilter(regime=None, feature="synth.refusal")
        want = st.scalar(
            "SELECT count(*) FROM pairs p JOIN features a ON a.text_id = p.chosen_text_id AND a.name = 'refusal' "
            "JOIN features b ON b.text_id = p.rejected_text_id AND b.name = 'refusal' WHERE a.value <> b.value")
        assert entries.count_entries(st, f) == want > 0
        # search is a literal substring (% and _ are not wildcards)
        assert entries.count_entries(st, EntryFilter(regime=None, search="sourdough")) == st.scalar(
            "SELECT count(*) FROM pairs WHERE context ILIKE '%sourdough%' OR chosen_response ILIKE '%sourdough%' "
            "OR rejected_response ILIKE '%sourdough%'")
        assert entries.count_entries(st, EntryFilter(regime=None, search="100%_")) == 0
        pid = expected.pair_id.iloc[5]
        assert entries.position_of(st, filt, None, pid) == 5


def test_pairs_without_gamma_have_a_group_and_a_filter(study_file):
    """The regime table's no-γ group leads to its pairs (it led to 0: the filter compared gamma = '?'),
    and the γ filter offers the values the study has."""
    with open_study(study_file) as st:
        st.execute("UPDATE pair_metrics SET gamma = NULL WHERE pair_id IN "
                   "(SELECT pair_id FROM pair_metrics ORDER BY pair_id LIMIT 40)")
        tab = store_metrics.regime_table(st, "gamma")
        none = tab[tab["grp"] == filters.GAMMA_NONE]
        assert none["n"].sum() == 40
        assert entries.count_entries(st, EntryFilter(regime=None, gamma=filters.GAMMA_NONE)) == 40
        for r in none.itertuples():
            assert entries.count_entries(st, EntryFilter(regime=r.regime, gamma=filters.GAMMA_NONE)) == r.n
        present = st.df("SELECT DISTINCT gamma FROM pair_metrics WHERE gamma IS NOT NULL")["gamma"].tolist()
        assert entries.list_values(st)["gamma"] == sorted(present + [filters.GAMMA_NONE])
        assert entries.count_entries(st, EntryFilter(regime=None, gamma=present[0])) == st.scalar(
            "SELECT count(*) FROM pair_metrics WHERE gamma = ?", [present[0]])


def test_agreement_matches_the_summary_definitions(study_file):
    """One convention (issue 17): agreement = agree / decided, misalignment its complement, ties beside
    them, as `rmtui summary` prints them; the regime screen's mis% comes from the store, not the screen."""
    with open_study(study_file) as st:
        st.execute("UPDATE pair_metrics SET tie_pre = TRUE, agree_pre = NULL WHERE pair_id IN "
                   "(SELECT pair_id FROM pair_metrics ORDER BY pair_id LIMIT 30)")
        m = st.df("SELECT agree_pre, tie_pre FROM pair_metrics")
        a = store_metrics.agreement(st)
    agree, disagree = int((m["agree_pre"] == 1).sum()), int((m["agree_pre"] == 0).sum())
    ties = int(m["tie_pre"].sum())
    assert a["ties_pre"] == ties >= 30
    assert a["pre"] == pytest.approx(agree / (agree + disagree)) == a["pre_decided"]
    assert a["mis_pre"] == pytest.approx(disagree / (agree + disagree))
    with open_study(study_file) as st:
        mis = store_metrics.misalignment_table(st)["all"]
        post = st.df("SELECT agree_post, tie_post FROM pair_metrics")
    dec = int(post["agree_post"].notna().sum())
    assert mis["decided"] == dec and mis["tie"] == int(post["tie_post"].fillna(False).sum())
    assert mis["misalignment"] == pytest.approx(int((post["agree_post"] == 0).sum()) / dec)
    assert mis["misalignment"] == pytest.approx(1 - a["post"])


def test_triage_tags_notes_selection_and_undo(study_file):
    with open_study(study_file) as st:
        ids = entries.sorted_ids(st, EntryFilter())
        a, b = ids[0], ids[1]
        assert triage.toggle_tag(st, a, "rm-error") is True
        triage.set_note(st, a, "RM likes the rude answer")
        assert entries.get_entry(st, a).tags == ["rm-error"]
        assert entries.count_entries(st, EntryFilter(regime=None, tag="rm-error")) == 1
        assert triage.undo_last(st).startswith("undid note")
        assert triage.get_note(st, a) is None
        assert triage.toggle_tag(st, a, "rm-error") is False  # toggled off
        triage.undo_last(st)
        assert entries.get_entry(st, a).tags == ["rm-error"]
        with pytest.raises(RmtuiError):
            triage.toggle_tag(st, b, "two words")
        # bulk select of a filter, then undo restores the earlier selection exactly
        triage.select(st, [b])
        n = triage.select(st, filt=EntryFilter())
        assert n == len(ids) - 1 and triage.selection_count(st) == len(ids)
        triage.undo_last(st)
        assert triage.selected_ids(st) == [b]
        assert triage.select(st, [b], mode="toggle") == 1 and triage.selection_count(st) == 0
    # survives closing: a new connection sees the tag
    with open_study(study_file, read_only=True) as st:
        assert entries.get_entry(st, a).tags == ["rm-error"]


# -- export -----------------------------------------------------------------------------------------
def test_export_all_formats_and_never_overwrite(study_file, tmp_path):
    from analysis.report.export import ExportExistsError, export_pairs

    with open_study(study_file) as st:
        ids = entries.sorted_ids(st, EntryFilter())[:3]
        triage.toggle_tag(st, ids[0], "label-noise")
        triage.set_note(st, ids[0], "both fine")
        triage.select(st, ids)
        sel = EntryFilter(regime=None, selected=True)
        out = tmp_path / "out.jsonl"
        res = export_pairs(st, sel, None, out)
        assert res.n == 3 and res.fmt == "jsonl"
        recs = [json.loads(l) for l in out.read_text().splitlines()]
        r0 = next(r for r in recs if r["pair_id"] == ids[0])
        assert r0["tags"] == ["label-noise"] and r0["note"] == "both fine"
        assert r0["regime"] == "resists_alignment"
        pre = st.scalar("SELECT reward_chosen_pre FROM pair_metrics WHERE pair_id = ?", [ids[0]])
        assert r0["rewards"]["chosen"]["pre:synth-rm-pre"] == pytest.approx(pre)
        assert set(r0["features"]["chosen"]) >= {"synth.harmless", "synth.sentiment"}
        meta = json.loads(Path(str(out) + ".meta.json").read_text())
        assert meta["fit"]["se_type"] == "cluster(pair)" and len(meta["models"]) == 2
        with pytest.raises(ExportExistsError):
            export_pairs(st, sel, None, out)
        for ext in ("csv", "md", "parquet"):
            res = export_pairs(st, ids, None, tmp_path / f"out.{ext}")
            assert res.n == 3
        csv = pd.read_csv(tmp_path / "out.csv")
        assert set(csv.pair_id) == set(ids) and "chosen.synth.harmless" in csv.columns
        md = (tmp_path / "out.md").read_text()
        assert "SE: cluster(pair)" in md and "both fine" in md
        import pyarrow.parquet as pq

        t = pq.read_table(tmp_path / "out.parquet")
        assert t.num_rows == 3 and b"rmtui" in t.schema.metadata
        with pytest.raises(RmtuiError):
            export_pairs(st, ids, None, tmp_path / "out.xlsx")


# -- the app ----------------------------------------------------------------------------------------
async def test_main_flow_filter_open_tag_select_export_reopen(study_file, tmp_path):
    from rmtui.screens.entry import EntryScreen
    from rmtui.screens.entry_list import ListScreen
    from rmtui.widgets.entry_list import EntryList

    out = tmp_path / "sel.jsonl"
    app = make_app(study_file, export_default=str(out))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        assert el.filt.regime == "resists_alignment"
        await pilot.press("x")  # all pairs
        assert el.total == N_PAIRS
        # filter dialog: field regime (first), then resists_alignment
        await pilot.press("f", "enter")
        await settle(pilot)
        opts = app.screen.choices
        idx = [v for v, _ in opts].index("resists_alignment")
        await pilot.press("home", *(["down"] * idx), "enter")
        await settle(pilot)
        assert isinstance(app.screen, ListScreen)
        n_res = app.service.count(EntryFilter())
        assert el.filt.regime == "resists_alignment" and el.total == n_res
        await pilot.press("down", "down")
        pid = el.current_pair
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EntryScreen) and app.screen.pair_id == pid
        await pilot.press("2")  # rm-error
        await pilot.press("n")
        await settle(pilot)
        await pilot.press(*"odd one", "enter")
        await pilot.press("s")
        await settle(pilot)
        head = str(app.screen.query_one("#entry-head").render())
        assert "rm-error" in head and "odd one" in head
        await pilot.press("escape")
        await settle(pilot)
        # export the selection
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("home", "enter")  # "selected pairs"
        await settle(pilot)
        await pilot.press("enter")  # path prefilled
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert out.exists()
        recs = [json.loads(l) for l in out.read_text().splitlines()]
        assert [r["pair_id"] for r in recs] == [pid] and recs[0]["tags"] == ["rm-error"]
        # exporting again asks before overwriting; n keeps the file
        before = out.stat().st_mtime_ns
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("home", "enter")
        await settle(pilot)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert app.screen.__class__.__name__ == "ConfirmDialog"
        await pilot.press("n")
        assert out.stat().st_mtime_ns == before
        await pilot.press("q")
    # reopen the study: the tag is there and the tag filter finds the pair
    app2 = make_app(study_file)
    async with app2.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app2.screen.query_one(EntryList)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("home", *(["down"] * 5), "enter")  # field 'tag'
        await settle(pilot)
        values = [v for v, _ in app2.screen.choices]
        await pilot.press("home", *(["down"] * values.index("rm-error")), "enter")
        await settle(pilot)
        assert el.filt.tag == "rm-error" and el.total == 1 and el.current_pair == pid
        await pilot.press("U")  # undo the last action (the select) from the reopened app
        assert app2.service.selection_count() == 0


async def test_g_prefix_selects_every_pair_of_filter_and_undo(study_file):
    from rmtui.widgets.entry_list import EntryList

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        await pilot.press("g", "s")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert app.service.selection_count() == el.total > 0
        await pilot.press("u")  # plain u: only the current pair
        assert app.service.selection_count() == el.total - 1
        await pilot.press("U", "U")
        await settle(pilot)
        assert app.service.selection_count() == 0
        # g counts only for the next key on the same pair: g, move, s selects one pair
        await pilot.press("g", "down", "s")
        await app.workers.wait_for_complete()
        assert app.service.selection_count() == 1


async def test_list_reloads_after_triage_in_the_entry_view(study_file):
    """Unselecting in the entry view drops the pair from an 'only selected' list on return (the list
    kept showing it); the cursor stays on its pair while the pair is there, else on its row."""
    from rmtui.widgets.entry_list import EntryList

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        await pilot.press("x", "s", "down", "s", "down", "s")  # select three pairs
        await settle(pilot)
        assert app.service.selection_count() == 3
        await pilot.press("f")
        await settle(pilot)
        fields = [v for v, _ in app.screen.choices]
        await pilot.press("home", *(["down"] * fields.index("selected")), "enter")
        await settle(pilot)
        await pilot.press("home", "down", "enter")  # "only selected"
        await settle(pilot)
        assert el.filt.selected and el.total == 3
        ids = [el.value(i, "pair_id") for i in range(3)]
        await pilot.press("down", "enter", "u", "escape")  # unselect the second pair from its entry view
        await settle(pilot)
        assert app.service.selection_count() == 2
        assert el.total == 2 and "· 2 pairs" in app.screen.query_one("#filter-bar").text
        assert [el.value(i, "pair_id") for i in range(2)] == [ids[0], ids[2]]
        assert el.current_pair == ids[2]  # the pair is gone: the same row
        await pilot.press("up", "enter", "1", "escape")  # tag the first: still selected, so still here
        await settle(pilot)
        assert el.total == 2 and el.current_pair == ids[0]
        # no triage while away: no reload (a sort of 160,000 pairs by tags is not free)
        orders, order = [], el._order
        el._order = lambda *a: orders.append(a) or order(*a)
        await pilot.press("question_mark", "escape", "enter", "escape", "f", "escape")
        await settle(pilot)
        assert orders == []
        await pilot.press("enter", "u", "escape")
        await settle(pilot)
        assert len(orders) == 1 and el.total == 1


async def test_status_says_what_happened_after_nothing_or_a_failure(study_file, tmp_path):
    """Exporting an empty selection writes nothing and says so; a failed export and a refused undo
    say 'failed' (the status kept 'exporting to …' and said 'nothing to undo' after the error)."""
    from rmtui.widgets.line import Line

    outdir = tmp_path / "exports"
    outdir.mkdir()
    app = make_app(study_file, export_default=str(outdir / "out.txt"))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        status = lambda: app.screen.query_one("#status", Line).text  # noqa: E731
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("home", "enter")  # selected pairs (0)
        await settle(pilot)
        assert "nothing to export" in status() and list(outdir.iterdir()) == []
        await pilot.press("s", "e")
        await settle(pilot)
        await pilot.press("home", "enter")
        await settle(pilot)
        await pilot.press("enter")  # out.txt: no format for that extension
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert app.screen.__class__.__name__ == "ErrorDialog"
        await pilot.press("escape")
        assert "failed: Export format" in status() and list(outdir.iterdir()) == []
    ro = make_app(study_file, read_only=True)
    async with ro.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter", "w")  # rewriting would store rewards: refused before any edit
        await settle(pilot)
        assert ro.screen.__class__.__name__ == "ErrorDialog" and ro.screen.title_text == "Read-only"
        await pilot.press("escape", "escape")
        await settle(pilot)
        await pilot.press("U")
        await settle(pilot)
        assert ro.screen.__class__.__name__ == "ErrorDialog"
        await pilot.press("escape")
        text = ro.screen.query_one("#status", Line).text
        assert "failed" in text and "nothing to undo" not in text


async def test_frequency_of_a_column_drills_down_and_quote_opens_the_selection(study_file):
    """F on a column lists its values over the filter with counts (hand-counted here); enter narrows
    the filter to one value; " shows the selected pairs of the filter, and again the filter as it was."""
    from rmtui.widgets.entry_list import EntryList

    with open_study(study_file, read_only=True) as st:
        want = st.df("SELECT subset, count(*) AS n FROM pairs GROUP BY 1 ORDER BY 2 DESC, 1")
    app = make_app(study_file)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        await pilot.press("x")
        for _ in range(12):
            if el.column_key == "subset":
                break
            await pilot.press("h")
        assert el.column_key == "subset"
        await pilot.press("F")
        await settle(pilot)
        rows = app.screen.choices
        assert [v for v, _ in rows] == want["subset"].tolist()
        assert [int(label.split()[1].replace(",", "")) for _, label in rows] == want["n"].tolist()
        await pilot.press("home", "down", "enter")  # the second most frequent subset
        await settle(pilot)
        assert el.filt.subset == want["subset"][1] and el.total == want["n"][1]
        await pilot.press("s", "down", "s", "quotation_mark")
        await settle(pilot)
        assert el.filt.selected and el.filt.subset == want["subset"][1] and el.total == 2
        await pilot.press("quotation_mark")
        assert not el.filt.selected and el.total == want["n"][1]
        for _ in range(12):
            if el.column_key == "margin_pre":
                break
            await pilot.press("l")
        await pilot.press("F")  # a numeric column: says which columns F takes
        assert "F counts the values of a column" in app.screen.query_one("#status").text
        # help lists every key of an action (it showed only the first: no j, k, G or space)
        from rich.console import Console

        from rmtui.screens.help import bindings_table

        c = Console(width=120, record=True, file=open(os.devnull, "w"))
        c.print(bindings_table(app.screen))
        keys = {line.split()[-1]: line for line in c.export_text().splitlines() if line.strip()}
        assert "↓ j" in keys["list.down"] and "pgdn space" in keys["list.pagedown"] and "end G" in keys["list.last"]
        assert '"' in keys["list.open_selection"] and "F" in keys["list.frequency"]


async def test_entry_steps_say_when_the_list_ends(study_file):
    app = make_app(study_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("end", "enter")
        await settle(pilot)
        pid = app.screen.pair_id
        await pilot.press("j")
        assert app.screen.pair_id == pid and "last pair of the list" in str(app.screen.query_one("#status").render())
        await pilot.press("k")
        assert app.screen.pair_id != pid


async def test_command_palette_offers_screen_actions_and_entry_steps(study_file):
    from rmtui.screens.coefficients import CoefficientScreen
    from rmtui.screens.entry import EntryScreen
    from rmtui.widgets.entry_list import EntryList

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        cmds = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Open", "Filter", "Export", "Coefs", "Regimes", "Undo", "Help"} <= set(cmds)
        cmds["Coefs"].callback()
        await settle(pilot)
        assert isinstance(app.screen, CoefficientScreen)
        await pilot.press("escape")
        el = app.screen.query_one(EntryList)
        second = el.value(1, "pair_id")
        await pilot.press("enter", "j")
        await settle(pilot)
        assert isinstance(app.screen, EntryScreen) and app.screen.pair_id == second
        await pilot.press("k")
        assert app.screen.pair_id == el.value(0, "pair_id")


async def test_coefficient_row_filters_list_by_feature(study_file):
    from rmtui.screens.coefficients import CoefficientScreen
    from rmtui.screens.entry_list import ListScreen
    from rmtui.widgets.entry_list import EntryList

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, CoefficientScreen)
        feature = app.screen.row_features["r0"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ListScreen)
        el = app.screen.query_one(EntryList)
        assert el.filt.feature == feature and el.filt.regime == "resists_alignment"
        assert el.total == app.service.count(EntryFilter(feature=feature))
        # regime table: a count cell filters by regime and gamma
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("tab")  # to the gamma table
        await pilot.press("right", "right", "right", "enter")  # row c, column resists
        await settle(pilot)
        assert isinstance(app.screen, ListScreen)
        assert el.filt == EntryFilter(regime="resists_alignment", gamma="c")


async def test_keymap_remaps_and_bad_keymap_shows_error(study_file, tmp_path):
    from rmtui.screens.dialogs import ErrorDialog
    from rmtui.screens.entry import EntryScreen

    km = tmp_path / "keymap.toml"
    km.write_text('[keymap]\n"list.open" = "o"\n')
    app = make_app(study_file, keymap=km)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, EntryScreen)
    km.write_text('[keymap\n"list.open" = o\n')
    app = make_app(study_file, keymap=km)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, 5)
        assert isinstance(app.screen, ErrorDialog)
        assert "keymap.toml" in app.screen.message
    # a typo'd id and a key on two actions are reported (they were ignored in silence); the rest applies
    km.write_text('[keymap]\n"list.nope" = "z"\n"list.open" = "o"\n"triage.select" = "o"\n"list.search" = "z"\n')
    app = make_app(study_file, keymap=km)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, 5)
        assert isinstance(app.screen, ErrorDialog) and app.screen.title_text == "Keymap"
        assert "list.nope: no binding has this id" in app.screen.message
        assert "'o' is bound to list.open and triage.select on the list screen" in app.screen.message
        await pilot.press("escape", "z")
        await settle(pilot)
        assert app.screen.__class__.__name__ == "InputDialog"  # list.search moved to z


async def test_error_dialog_instead_of_traceback(study_file, tmp_path):
    from rmtui.screens.dialogs import ErrorDialog

    app = make_app(study_file, export_default=str(tmp_path / "no" / "such" / "dir.jsonl"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("end", "enter", "enter")  # the current filter, to a missing folder
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "no such folder" in app.screen.message
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorDialog)


async def test_locked_study_shows_message_and_quits(study_file, monkeypatch):
    monkeypatch.setenv("RMTUI_LOCK_TIMEOUT", "0.5")  # the app waits this long for a job's lock, then says so
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(study_file)!r})
            print('locked', flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        app = make_app(study_file)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.screen.__class__.__name__ == "OpenFailedScreen"
            assert "Study is in use" in app.screen.title_text
            assert "has this study open for writing" in app.screen.message
            await pilot.press("q")
        assert app.return_code == 1
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)


class StubRewriter:
    """Stands in for analysis.rewrite.experiment in a UI test of the rewrite screen (the real one: below)."""

    def __init__(self):
        self.calls, self.discarded, self.kept = [], [], []
        self.warm_up_threads = []

    def warm_up(self):  # imports the robustness module: never on the UI thread
        import threading

        self.warm_up_threads.append(threading.current_thread() is threading.main_thread())

    @staticmethod
    def perturbations():
        return ["add_apology", "shout"]

    @staticmethod
    def llm_configured():
        return False

    def rewrite(self, pair_id, side, rewriter, *, text=None, perturbation=None, keep=False):
        self.calls.append((pair_id, side, rewriter, text, perturbation, keep))
        new = text if text is not None else f"SORRY. {perturbation}"
        rewards = pd.DataFrame({"model_id": ["m-pre", "m-post"], "role": ["pre", "post"],
                                "old": [0.5, -1.0], "new": [0.7, 2.5]})
        return SimpleNamespace(rewrite_id=f"rw{len(self.calls)}", pair_id=pair_id, side=side,
                               original_response="", new_response=new, rewards=rewards,
                               margin_old={"pre": -0.2, "post": -1.5}, margin_new={"pre": 0.1, "post": 2.0},
                               flips={"pre": True, "post": True}, similarity=0.83, kept=False)

    def keep(self, outcome):
        self.kept.append(outcome.rewrite_id)

    def discard(self, rewrite_id):
        self.discarded.append(rewrite_id)


async def test_rewrite_screen_with_stub_backend(study_file):
    from textual.widgets import TextArea

    from rmtui.screens.rewrite import RewriteScreen

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        stub = StubRewriter()
        app.service.rewriter = stub
        await pilot.press("enter", "w")
        await settle(pilot)
        assert isinstance(app.screen, RewriteScreen)
        await pilot.press("ctrl+r")  # unchanged text: nothing to do
        assert stub.calls == []
        ta = app.screen.query_one(TextArea)
        ta.text = "an edit, not rescored"
        await settle(pilot)
        await pilot.press("ctrl+o")  # the edit stays as the chosen side's draft
        assert app.screen.side == "rejected" and ta.text == app.screen.original
        await pilot.press("ctrl+o")
        assert app.screen.side == "chosen" and ta.text == "an edit, not rescored"
        ta.text = "A calmer, more helpful answer."
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert stub.calls[-1][2:4] == ("manual", "A calmer, more helpful answer.")
        summary = str(app.screen.query_one("#rw-summary").render())
        assert "FLIPS" in summary and "0.83" in summary
        await pilot.press("ctrl+t")
        await settle(pilot)
        await pilot.press("down", "enter")  # 'shout'
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert stub.calls[-1][5] is False  # rescoring stores nothing
        assert app.screen.query_one(TextArea).text == "SORRY. shout"
        await pilot.press("ctrl+g")  # discard a rewrite never stored: nothing to delete
        assert stub.discarded == [] and app.screen.outcome is None
        assert app.screen.query_one(TextArea).text == app.screen.original
        await pilot.press("ctrl+t")
        await settle(pilot)
        await pilot.press("down", "enter")
        await app.workers.wait_for_complete()
        await settle(pilot)
        await pilot.press("ctrl+s", "ctrl+s")  # keep; again: already kept
        assert stub.kept == ["rw3"]
        assert "already kept" in str(app.screen.query_one("#status").render())
        await pilot.press("escape")
        await settle(pilot)
        assert stub.discarded == [] and stub.kept == ["rw3"]
        assert stub.warm_up_threads and not any(stub.warm_up_threads)  # warmed up in a worker
        assert app.screen.__class__.__name__ == "EntryScreen"


async def test_rewrite_drafts_are_never_lost_without_asking(study_file):
    """Each side keeps its own draft; leaving a side with a rescored draft that is not kept, leaving
    the view or quitting asks first; ctrl+g over an edit that was not rescored keeps it. (On the old
    code ctrl+o dropped the rescored edit in silence, escape and quit left without a word, and ctrl+g
    after a later edit reset the editor to the original.)"""
    from textual.widgets import TextArea

    from rmtui.screens.dialogs import ChoiceDialog, ConfirmDialog
    from rmtui.screens.entry import EntryScreen
    from rmtui.screens.rewrite import RewriteScreen

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        stub = StubRewriter()
        app.service.rewriter = stub
        await pilot.press("enter", "w")
        await settle(pilot)
        rw = app.screen
        assert isinstance(rw, RewriteScreen)
        ta = rw.query_one(TextArea)
        ta.text = "A rescored chosen edit."
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert rw.outcome is not None
        await pilot.press("ctrl+o")  # a rescored draft that is not kept: asks
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is rw and rw.side == "chosen" and ta.text == "A rescored chosen edit."
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert rw.side == "rejected" and ta.text == rw.original
        ta.text = "A rejected edit, not rescored."
        await settle(pilot)
        await pilot.press("ctrl+g")  # nothing rescored on this side: discard keeps the edit
        assert "nothing to discard" in str(rw.query_one("#status").render())
        assert ta.text == "A rejected edit, not rescored."
        await pilot.press("ctrl+o")  # no rescored draft here: switches at once, the edit stays
        await settle(pilot)
        assert rw.side == "chosen" and ta.text == "A rescored chosen edit." and rw.outcome is not None
        ta.text = "A rescored chosen edit, edited again."
        await settle(pilot)
        await pilot.press("ctrl+g")  # drops the rescored rewrite, keeps the later edit
        assert rw.outcome is None and ta.text == "A rescored chosen edit, edited again."
        ta.text = "Rescored once more."
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await settle(pilot)
        await pilot.press("ctrl+o", "y")
        await settle(pilot)
        assert rw.side == "rejected" and ta.text == "A rejected edit, not rescored."
        await pilot.press("escape")  # leaving the view: asks, naming both drafts
        await settle(pilot)
        assert isinstance(app.screen, ChoiceDialog)
        labels = " ".join(label for _, label in app.screen.choices)
        assert "chosen: a rescored rewrite, not kept" in labels and "rejected: an edit, not rescored" in labels
        await pilot.press("escape")  # stay
        await settle(pilot)
        assert app.screen is rw
        await pilot.press("ctrl+q")  # quitting: asks too
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and "not kept" in app.screen.message
        await pilot.press("n")
        await settle(pilot)
        assert app.is_running and app.screen is rw
        await pilot.press("escape")
        await settle(pilot)
        values = [v for v, _ in app.screen.choices]
        await pilot.press("home", *(["down"] * values.index("keep")), "enter")  # keep, then leave
        await settle(pilot)
        assert isinstance(app.screen, EntryScreen) and stub.kept == ["rw2"]
        assert stub.discarded == []


async def test_rewrite_rescore_with_real_models(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    from analysis import scoring
    from textual.widgets import TextArea

    from rmtui.screens.rewrite import RewriteScreen

    path = tmp_path / "study.duckdb"
    make_synthetic_study(path, 20, seed=1, with_models=False)
    with open_study(path) as st:
        scoring.score_study(st, str(tiny_rm_dir), "pre", settings=scoring.ScoreSettings(device="cpu"))
        scoring.score_study(st, str(tiny_rm_dir_b), "post", settings=scoring.ScoreSettings(device="cpu"))
    app = make_app(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)

        async def rescore(text):  # from the entry view: w, the text, ctrl+r, wait for the worker
            await pilot.press("w")
            await settle(pilot)
            assert isinstance(app.screen, RewriteScreen)
            app.screen.query_one(TextArea).text = text
            await pilot.press("ctrl+r")
            for _ in range(600):
                await app.workers.wait_for_complete()
                await pilot.pause()
                if not app.screen.busy:
                    break
            return str(app.screen.query_one("#status").render())

        await pilot.press("x", "enter")
        await settle(pilot)
        status = await rescore("I am sorry, I cannot help with that.")
        pid = app.screen.pair_id
        assert app.screen.outcome is not None, status
        await pilot.press("ctrl+s", "escape")
        await settle(pilot)

        # the same rewrite again has the same id: shown as already kept, and leaving keeps it
        assert "already kept" in await rescore("I am sorry, I cannot help with that.")
        await pilot.press("escape")
        await settle(pilot)
        # a rewrite never kept is not in the study after quitting from the rewrite screen
        assert "ctrl+s keep" in await rescore("Certainly! Here is exactly how.")
        await app.action_quit()  # asks first: the rescored rewrite is not kept
        await settle(pilot)
        assert app.screen.__class__.__name__ == "ConfirmDialog"
        await pilot.press("y")
    with open_study(path, read_only=True) as st:
        rows = st.df("SELECT new_response FROM rewrites WHERE pair_id = ? AND coalesce(kept, TRUE)", [pid])
        assert rows["new_response"].tolist() == ["I am sorry, I cannot help with that."]


def test_explore_command_rejects_missing_study(tmp_path):
    from typer.testing import CliRunner

    import rmtui.cli.explore  # noqa: F401  (registers the command)
    from rmtui.cli.base import app as cli

    res = CliRunner().invoke(cli, ["explore", str(tmp_path / "nope.duckdb")])
    assert res.exit_code == 1


# -- snapshots (deterministic: fixed seed, no clocks) ------------------------------------------------
# every screen at the design size (80x24) and the comfortable one (120x40)
SIZES = [(80, 24), (120, 40)]


async def _to_entry(pilot):  # the first pair of the list is a multi-turn one (two earlier turns)
    await pilot.press("enter")
    await pilot.pause()


async def _to_rewrite(pilot):
    await pilot.press("enter", "w")
    await pilot.pause()


async def _to_rescored_rewrite(pilot):
    from textual.widgets import TextArea

    pilot.app.service.rewriter = StubRewriter()
    await pilot.press("enter", "w")
    await settle(pilot)
    pilot.app.screen.query_one(TextArea).text = "I can't help with that, but here is a safer way to do it."
    await pilot.press("ctrl+r")
    await pilot.app.workers.wait_for_complete()
    await settle(pilot)


async def _to_empty_filter(pilot):
    subset = pilot.app.service.choices()["subset"][0]
    pilot.app.screen.apply_filter(EntryFilter(regime="reversed", subset=subset, search="no such words"))
    from tests.helpers.svg_text import svg_lines

    for _ in range(200):  # the empty list starts a second worker (the diagnostics) after the first posts back:
        await pilot.app.workers.wait_for_complete()  # wait until its lines are on the screen
        await pilot.pause(0.05)
        if "matches no pair" in "\n".join(svg_lines(pilot.app.export_screenshot())) and not pilot.app.workers._workers:
            break
    await settle(pilot)


@pytest.fixture
def no_gamma_study(study_file):
    with open_study(study_file) as st:
        st.execute("UPDATE pair_metrics SET gamma = NULL")
    return study_file


@pytest.fixture(scope="session")
def dropped_feature_template(synth_template, tmp_path_factory):
    """The synthetic study with a constant feature (has_code = 0 everywhere), refitted: the fit drops it."""
    from analysis.fit.study_fit import fit_study

    p = tmp_path_factory.mktemp("dropped") / "study.duckdb"
    shutil.copy(synth_template, p)
    with open_study(p) as st:
        st.execute("INSERT INTO feature_defs VALUES ('synth', 'has_code', 'binary', 'spoiler', FALSE, 'code block')")
        st.execute("INSERT INTO features SELECT DISTINCT text_id, 'synth', 'has_code', 0 FROM texts")
        fit_study(st)
    return p


@pytest.fixture
def dropped_feature_study(dropped_feature_template, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    p = d / "study.duckdb"
    shutil.copy(dropped_feature_template, p)
    return p


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_list(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_entry(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size, run_before=_to_entry)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_coefficients(dropped_feature_study, snap_compare, size):
    assert snap_compare(make_app(dropped_feature_study), terminal_size=size, press=["c"])


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_regimes(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size, press=["m"])


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_rewrite(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size, run_before=_to_rewrite)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_rewrite_rescored(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size, run_before=_to_rescored_rewrite)


@pytest.mark.parametrize("size", SIZES)
async def test_snapshot_empty_filter(study_file, size):
    """The empty filter's screen, read as text (its pixel snapshot raced the diagnostics worker: issue 25)."""
    from tests.helpers.svg_text import svg_lines

    app = make_app(study_file)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await _to_empty_filter(pilot)
        screen = "\n".join(svg_lines(app.export_screenshot()))
    assert "No pair matches regime=reversed" in screen, screen
    assert "search 'no such words': 0 pairs alone" in screen and "← matches no pair" in screen, screen
    assert "Widen it: x shows all pairs" in screen, screen


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_list_without_gamma(no_gamma_study, snap_compare, size):
    assert snap_compare(make_app(no_gamma_study), terminal_size=size, press=["x", "l", "l"])


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_glossary(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size, press=["i"])


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_help(study_file, snap_compare, size):
    assert snap_compare(make_app(study_file), terminal_size=size, press=["question_mark"])


LONG_CHOSEN = "\n".join(f"Step {i}: water the bed and check the soil." for i in range(1, 201))


@pytest.fixture
def long_chosen_study(study_file):
    """The synthetic study whose first listed pair (the default filter's first row) has a 200-line
    chosen response."""
    with open_study(study_file) as st:
        first = entries.sorted_ids(st, EntryFilter())[0]
        st.execute("UPDATE pairs SET chosen_response = ? WHERE pair_id = ?", [LONG_CHOSEN, first])
    return study_file


async def _to_entry_settled(pilot):
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


def test_snapshot_entry_long_chosen(long_chosen_study, snap_compare):
    """80x24, a 200-line chosen response: both panes' titles and first lines on the first screen."""
    assert snap_compare(make_app(long_chosen_study), terminal_size=(80, 24), run_before=_to_entry_settled)


async def test_entry_with_a_long_chosen_response_shows_both_panes_at_80x24(long_chosen_study):
    """REJECTED no longer falls below the fold: at 80x24 both titles and the first lines of both
    responses are on the screen (read from the screenshot's text), the long one says how many lines
    are left, and it scrolls on its own (the body, and so REJECTED, stays where it is)."""
    from tests.helpers.svg_text import svg_lines

    app = make_app(long_chosen_study)
    async with app.run_test(size=(80, 24)) as pilot:
        await _to_entry_settled(pilot)
        scr = app.screen
        rejected_first = str(scr.entry.pair["rejected_response"]).split()[:4]
        screen = "\n".join(svg_lines(app.export_screenshot()))
        assert "CHOSEN" in screen and "REJECTED" in screen
        assert "Step 1: water the bed" in screen
        assert " ".join(rejected_first) in screen
        assert "more lines" in screen and "Step 200" not in screen
        pane = scr.query_one("#chosen-pane")
        shown = pane.scrollable_content_region.height
        assert 2 <= shown < 24
        assert scr.query_one("#side-chosen").border_subtitle == f"… {200 - shown} more lines"
        body_y = scr.query_one("#entry-body").scroll_y
        await pilot.press("o", "o")  # rejected, then back to chosen: its pane has the focus
        await settle(pilot)
        assert app.focused is pane
        await pilot.press("pagedown")
        await settle(pilot)
        assert pane.scroll_y > 0 and scr.query_one("#entry-body").scroll_y == body_y
        assert scr.query_one("#side-chosen").border_subtitle == f"… {200 - shown - round(pane.scroll_y)} more lines"
        screen = "\n".join(svg_lines(app.export_screenshot()))
        assert "REJECTED" in screen and "Step 1:" not in screen


async def test_entry_folds_a_long_request_and_drops_what_the_data_lacks(study_file):
    """A 15-line request folds to three lines until z (CHOSEN and REJECTED stay on the first screen);
    data without splits or held-out marks shows neither in the header or the list; one human label
    shows its winner, not 'votes A 0 B 1 (agreement +1.00)'; a model named after its role reads once."""
    from tests.helpers.svg_text import svg_lines

    request = "Human: " + "\n".join(f"Point {i} of what I need to know about my garden." for i in range(1, 16))
    with open_study(study_file) as st:
        first = entries.sorted_ids(st, EntryFilter())[0]
        st.execute("UPDATE pairs SET context = ?, split = NULL, heldout = NULL, votes_a = 0, votes_b = 1, "
                   "votes_tie = 0, annotator_agreement = 1.0 WHERE pair_id = ?", [request, first])
        st.execute("UPDATE pairs SET split = NULL, heldout = NULL")
        st.execute("UPDATE models SET name = role WHERE role IN ('pre', 'post')")
    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one("EntryList")
        keys = [c.key for c in el.columns]
        assert "split" not in keys and "heldout" not in keys
        assert "split" not in el.header_text().plain and "held" not in el.header_text().plain
        await pilot.press("enter")
        await settle(pilot)
        scr = app.screen
        head = str(scr.query_one("#entry-head").render())
        assert "unknown" not in head and "/-" not in head and "held out" not in head and "in sample" not in head
        assert "one label: B" in head and "votes A" not in head
        turn = str(scr.query_one("#last-turn").render())
        assert turn.count("\n") == 2 and "Point 1 " in turn and "Point 15" not in turn and "z shows it all" in turn
        screen = "\n".join(svg_lines(app.export_screenshot()))
        assert "CHOSEN" in screen and "REJECTED" in screen
        scores = str(scr.query_one("#scores").render())
        assert "pre pre" not in " ".join(scores.split()) and "post post" not in " ".join(scores.split())
        assert " ".join(scores.split()).startswith("pre chosen")
        await pilot.press("z")
        await settle(pilot)
        assert "Point 15" in str(scr.query_one("#last-turn").render())


async def test_coefficient_screen_names_the_features_left_out(dropped_feature_study):
    """A feature the fit left out (constant has_code) is named with the fit's reason (it disappeared
    without a word); the view and the sort show at 80 columns (only at 120 before)."""
    app = make_app(dropped_feature_study)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        head = str(app.screen.query_one("#coef-head").render())
        assert "left out: has_code (constant over the fitted rows)" in head
        assert "showing pre, post, shift" in head and "sorted by feature name" in head
        assert "pre = synth-rm-pre" in head
        region = app.screen.query_one("#coef-head").region
        assert region.height >= 4  # every line of the head is on screen


async def test_brackets_in_user_text_are_shown_not_parsed_as_markup(study_file):
    """A search, a tag and a tag list with Rich-markup brackets: shown as typed, and the app lives on
    (they raised MarkupError in the status line, the dialogs' help and the option labels)."""
    from rmtui.widgets.entry_list import EntryList
    from rmtui.widgets.line import Line

    app = make_app(study_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        await pilot.press("x", "slash", *"[/red]", "enter")
        await settle(pilot)
        assert "search='[/red]'" in app.screen.query_one("#filter-bar", Line).text
        await pilot.press("x", "T", *"[/b]", "enter")
        await settle(pilot)
        pid = el.current_pair
        assert "[/b]" in app.service.entry(pid).tags
        assert "[/b]" in app.screen.query_one("#status", Line).text
        await pilot.press("T")  # the dialog's help lists the known tags, brackets and all
        await settle(pilot)
        assert "[/b]" in str(app.screen.query_one(".dialog-help").render())
        await pilot.press("escape", "f")
        await settle(pilot)
        fields = [v for v, _ in app.screen.choices]
        await pilot.press("home", *(["down"] * fields.index("tag")), "enter")
        await settle(pilot)
        values = [v for v, _ in app.screen.choices]
        await pilot.press("home", *(["down"] * values.index("[/b]")), "enter")
        await settle(pilot)
        assert el.filt.tag == "[/b]" and el.total == 1 and el.current_pair == pid
        assert app.is_running


async def test_regime_screen_shows_the_stores_misalignment(study_file):
    """The regimes screen's mis% column is the store's post-D misalignment (disagree / decided by the
    post-D RM), the complement of the post-D agreement in its header; the screen computes nothing."""
    from textual.widgets import DataTable

    from rmtui.screens.regimes import RegimeScreen

    with open_study(study_file) as st:
        # plant post ties: they must leave the denominator, not count as misaligned
        st.execute("UPDATE pair_metrics SET tie_post = TRUE, agree_post = NULL, regime = 'tie' WHERE pair_id IN "
                   "(SELECT pair_id FROM pair_metrics ORDER BY pair_id LIMIT 25)")
        # and pre ties on pairs the post-D RM decides: they stay in the post-D denominator
        st.execute("UPDATE pair_metrics SET tie_pre = TRUE, agree_pre = NULL, regime = 'tie' WHERE pair_id IN "
                   "(SELECT pair_id FROM pair_metrics WHERE agree_post = 0 ORDER BY pair_id LIMIT 40)")
        post = st.df("SELECT agree_post FROM pair_metrics")
    dec = int(post["agree_post"].notna().sum())
    want = 100 * int((post["agree_post"] == 0).sum()) / dec
    app = make_app(study_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, RegimeScreen)
        t = app.screen.query_one("#t-all", DataTable)
        assert str(t.get_cell("all", "mis")) == f"{want:.1f}"
        header = str(app.screen.query_one("#agreement").render())
        assert f"post-D {1 - want / 100:.3f}" in header and "ties pre" in header


async def test_g_prefix_gg_goes_to_the_top_and_other_keys_cancel_it(study_file):
    """gg goes to the top (as in vim and less; it armed a select-all); a key that does not continue
    g cancels it and clears its hint (the hint stayed, and g g s selected every pair)."""
    from rmtui.widgets.entry_list import EntryList
    from rmtui.widgets.line import Line

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        status = lambda: app.screen.query_one("#status", Line).text  # noqa: E731
        await pilot.press("x", "down", "down", "down")
        assert el.cursor == 3
        await pilot.press("g")
        assert "g-" in status()
        await pilot.press("g")
        await settle(pilot)
        assert el.cursor == 0 and "g-" not in status()
        await pilot.press("s")  # a plain s after gg: this pair only
        await app.workers.wait_for_complete()
        assert app.service.selection_count() == 1
        await pilot.press("down", "g", "z")  # an unbound key cancels the prefix and its hint
        await settle(pilot)
        assert "g-" not in status() and "select all" not in status()
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert app.service.selection_count() == 2
        await pilot.press("g", "s")  # g s still selects every pair of the filter
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert app.service.selection_count() == el.total
        await pilot.press("enter", "g")  # the entry view: the hint shows there too, and another key cancels it
        await settle(pilot)
        assert "select all" in str(app.screen.query_one("#status").render())
        await pilot.press("pagedown")
        await settle(pilot)
        assert "select all" not in str(app.screen.query_one("#status").render())


async def test_empty_filter_and_empty_columns_say_why(study_file):
    """A filter with no pair names the part that empties it and how to widen it (the list was blank,
    'row 0/0'); a column no pair has a value in (γ without target labels) is marked, its filter says
    why, and sorting by it says it sorts nothing (it said 'sorted by gamma descending'); a sort key
    with some NULLs says how many pairs go last."""
    from rmtui.widgets.entry_list import EntryList
    from rmtui.widgets.line import Line

    with open_study(study_file) as st:
        st.execute("UPDATE pair_metrics SET gamma = NULL")
        st.execute("UPDATE pair_metrics SET theta = NULL WHERE pair_id IN "
                   "(SELECT pair_id FROM pair_metrics ORDER BY pair_id LIMIT 25)")
        subset = st.scalar("SELECT min(subset) FROM pairs")
        n_sub = st.scalar("SELECT count(*) FROM pairs WHERE subset = ?", [subset])
    app = make_app(study_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        status = lambda: app.screen.query_one("#status", Line).text  # noqa: E731
        header = lambda: app.screen.query_one("#list-header", Line).text  # noqa: E731
        assert "γ∅" in header()
        # an empty filter: a search that matches nothing, with a subset that matches some
        app.screen.apply_filter(EntryFilter(regime=None, subset=subset, search="no such words zq"))
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert el.total == 0
        shown = " ".join(t.plain for t in el.empty_message)
        assert "search 'no such words zq'" in shown and "matches no pair" in shown
        assert f"subset={subset}: {n_sub:,} pairs alone" in shown
        assert "0 pairs: search 'no such words zq' matches no pair" in status() and "x all pairs" in status()
        lines = [str(el.render_line(y).text) for y in range(3)]
        assert "No pair matches" in lines[0]
        await pilot.press("x")
        await settle(pilot)
        assert el.total == N_PAIRS and "0 pairs" not in status()
        # sorting by the empty γ: says so and keeps the order
        before = [el.value(i, "pair_id") for i in range(5)]
        for _ in range(12):
            if el.column_key == "gamma":
                break
            await pilot.press("l")
        assert el.column_key == "gamma"
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "not sorted: no pair here has a gamma" in status() and el.sort[0] != "gamma"
        assert [el.value(i, "pair_id") for i in range(5)] == before
        # its filter says why it offers only 'none'
        await pilot.press("f")
        await settle(pilot)
        fields = [v for v, _ in app.screen.choices]
        await pilot.press("home", *(["down"] * fields.index("gamma")), "enter")
        await settle(pilot)
        assert [v for v, _ in app.screen.choices][1:] == ["none"]
        assert "no pair has a γ" in str(app.screen.query_one(".dialog-help").render())
        await pilot.press("escape")
        await settle(pilot)
        # a sort key with some NULLs: sorted, and the pairs without a value are counted (last both ways)
        for _ in range(12):
            if el.column_key == "theta":
                break
            await pilot.press("l")
        assert el.column_key == "theta"
        for key, desc in (("right_square_bracket", True), ("left_square_bracket", False)):
            await pilot.press(key)
            await settle(pilot)
            assert el.sort == ("theta", desc) and "25 pairs without a value last" in status()
            assert el.value(el.total - 1, "theta") is None and el.value(el.total - 26, "theta") is not None


async def test_pairs_without_a_fit_open_on_all_pairs_with_a_hint(tmp_path):
    """A study with pairs but no fit opened on 'resists_alignment · 0 pairs' with no word: it opens on
    every pair and says what to run next."""
    from rmtui.widgets.entry_list import EntryList
    from rmtui.widgets.line import Line

    path = tmp_path / "study.duckdb"
    make_synthetic_study(path, 30, seed=2, with_models=False)
    with open_study(path) as st:
        st.execute("DELETE FROM pair_metrics")
    app = make_app(path)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        assert el.filt.regime is None and el.total == 30
        text = app.screen.query_one("#status", Line).text
        assert "no fit yet" in text and "rmtui score --study" in text and "rmtui fit --study" in text


async def test_entry_at_80x24_shows_the_last_turn_and_both_responses_first(study_file):
    """A multi-turn pair at 80x24: the last human turn and CHOSEN on the first screen, earlier turns
    folded to one line (z unfolds), o jumps to REJECTED (it came after two PgDn, below the features)."""
    with open_study(study_file, read_only=True) as st:
        multi = st.df("SELECT pair_id, context FROM pairs WHERE context LIKE '%Assistant:%Human:%'")
    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one("EntryList")
        i = next(i for i in range(el.total) if el.value(i, "pair_id") in set(multi.pair_id))
        el.move_to(i)
        await pilot.press("enter")
        await settle(pilot)
        scr = app.screen
        context = multi.set_index("pair_id").loc[scr.pair_id, "context"]
        last = context[context.rfind("Human:"):].strip()
        body = scr.query_one("#entry-body")

        def visible(sel):
            r, b = scr.query_one(sel).region, body.region
            return r.height > 0 and r.y >= b.y and r.y < b.bottom

        assert str(scr.query_one("#last-turn").render()).strip() == last
        assert "earlier turn" in str(scr.query_one("#context-fold").render())
        assert visible("#last-turn") and visible("#chosen-title")
        await pilot.press("o")
        await settle(pilot)
        assert visible("#rejected-title")
        await pilot.press("o", "z")
        await settle(pilot)
        assert "Assistant:" in str(scr.query_one("#context-fold").render())


async def test_every_column_is_reachable_at_80_columns(study_file):
    """h / l reach every column at 80 columns and the list scrolls sideways to show it, with ‹ › where
    columns are off screen (split, θ and held vanished and h / l skipped them); subsets cut to the
    width stay distinguishable ('helpful-onli…'); the focused column's meaning is in the status."""
    from rmtui.widgets.entry_list import COLUMNS, EntryList
    from rmtui.widgets.line import Line

    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        header = lambda: app.screen.query_one("#list-header", Line).text  # noqa: E731
        status = lambda: app.screen.query_one("#status", Line).text  # noqa: E731
        await pilot.press("x")
        assert header().rstrip().endswith("›") and "m.post" in status()
        seen = set()
        for _ in range(len(COLUMNS) + 2):
            await pilot.press("l")
            await settle(pilot, 1)
            seen.add(el.column_key)
            shown = [c.key for c, _ in el.visible_columns()]
            assert el.column_key in shown
        assert {"split", "theta", "heldout", "prompt", "tags"} <= seen
        assert el.column_key == "split" and header().startswith("‹") and "split" in header()
        assert "split: the dataset split" in status()
        for _ in range(len(COLUMNS) + 2):
            await pilot.press("h")
        assert el.column_key == "pair_id" and not header().startswith("‹")
        # subsets: distinguishable at 80 (each shown name stands for one subset)
        subsets = app.service.choices()["subset"]
        shown = {s: el._subset_layout(el.content_width())[1][s] for s in subsets}
        assert len(set(shown.values())) == len(subsets)
        assert all(len(v) <= 13 for v in shown.values())


async def test_glossary_from_every_screen_and_help(study_file):
    """One key opens the glossary from every screen (f2 where a text box takes letters), and the help
    links to it; it defines the words the app uses."""
    from rmtui.screens.glossary import GLOSSARY, GlossaryScreen

    terms = " ".join(t for t, *_ in GLOSSARY)
    for word in ("margin", "agreement", "stayed aligned", "got aligned", "resists alignment", "reversed",
                 "γ gamma", "θ theta", "imprint", "held-out", "proxy ~", "SE cluster"):
        assert word in terms, word
    app = make_app(study_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.service.rewriter = StubRewriter()
        for path in ([], ["enter"], ["c"], ["m"]):
            await pilot.press(*path, "i")
            await settle(pilot)
            assert isinstance(app.screen, GlossaryScreen), path
            await pilot.press("escape")
            await settle(pilot)
            while app.screen.__class__.__name__ != "ListScreen":
                await pilot.press("escape")
                await settle(pilot)
        await pilot.press("enter", "w")
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        assert isinstance(app.screen, GlossaryScreen)
        await pilot.press("escape", "escape", "escape")
        await settle(pilot)
        await pilot.press("question_mark", "g")
        await settle(pilot)
        assert isinstance(app.screen, GlossaryScreen)


async def test_readme_key_table_is_the_bindings_and_help_lists_them(study_file):
    """The README's key table is what rmtui.keys generates from the bindings, and each screen's help
    lists exactly the ids of that screen's row (plus the keys active everywhere)."""
    from rich.console import Console

    from rmtui import keys
    from rmtui.screens.help import bindings_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index(keys.START) + len(keys.START):readme.index(keys.END)].strip()
    assert table == keys.markdown(), "README key table is stale: python -m rmtui.keys --write README.md"
    ids = {where: {i for _, _, i in rs} for where, rs in keys.rows()}
    everywhere, triage = ids["everywhere"], ids["triage (list and entry)"]
    app = make_app(study_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.service.rewriter = StubRewriter()
        for where, path, extra in (("list", [], triage), ("entry", ["enter"], triage),
                                   ("coefficients", ["escape", "c"], set()), ("regimes", ["escape", "m"], set())):
            await pilot.press(*path)
            await settle(pilot)
            c = Console(width=200, record=True, file=open(os.devnull, "w"))
            c.print(bindings_table(app.screen))
            shown = {line.split()[-1] for line in c.export_text().splitlines()[1:] if line.strip()}
            assert shown == ids[where] | extra | everywhere, where


async def test_every_sort_key_with_nulls_puts_them_last_and_says_how_many(study_file):
    """Each sortable column with NULLs planted in some pairs: ascending and descending, the pairs
    without a value come last and the status counts them (hand count from the planted rows)."""
    from rmtui.widgets.entry_list import COLUMNS, SORTABLE, EntryList
    from rmtui.widgets.line import Line

    planted = {"subset": ("pairs", 11), "split": ("pairs", 12), "heldout": ("pairs", 13),
               "margin_pre": ("pair_metrics", 14), "margin_post": ("pair_metrics", 15),
               "regime": ("pair_metrics", 16), "gamma": ("pair_metrics", 17), "theta": ("pair_metrics", 18)}
    with open_study(study_file) as st:
        for col, (table, n) in planted.items():
            st.execute(f"UPDATE {table} SET {col} = NULL WHERE pair_id IN "
                       f"(SELECT pair_id FROM {table} ORDER BY md5(pair_id || '{col}') LIMIT {n})")
        st.execute("DELETE FROM triage")
        tagged = st.df("SELECT pair_id FROM pairs ORDER BY pair_id LIMIT 5")["pair_id"].tolist()
    app = make_app(study_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for pid in tagged:
            app.service.toggle_tag(pid, "rm-error")
        el = app.screen.query_one(EntryList)
        status = lambda: app.screen.query_one("#status", Line).text  # noqa: E731
        await pilot.press("x")
        await settle(pilot)
        expected = {**{c: n for c, (_, n) in planted.items()}, "tags": N_PAIRS - len(tagged)}
        checked = set()
        shown = el.columns  # the study's columns (votes is hidden in a study without human votes)
        for c in shown:
            if c.key not in SORTABLE or c.key in ("pair_id", "prompt"):
                continue
            for _ in range(20):
                if el.column_key == c.key:
                    break
                await pilot.press("l" if [x.key for x in shown].index(c.key) > [x.key for x in shown].index(
                    el.column_key) else "h")
            assert el.column_key == c.key
            n = expected[c.key]
            for key, desc in (("right_square_bracket", True), ("left_square_bracket", False)):
                await pilot.press(key)
                await settle(pilot)
                assert el.sort == (c.key, desc), c.key
                assert f"{n:,} pairs without a value last" in status(), (c.key, status())
                assert all(el.value(i, c.key) is None for i in range(el.total - n, el.total)), c.key
                assert el.value(el.total - n - 1, c.key) is not None, c.key
            checked.add(c.key)
        assert checked == set(expected)
