"""The UI thread runs no store query that can take more than a frame: list reloads (filter, sort,
drill-down), frequency counts and bulk triage (select a filter, undo) run in thread workers."""

from __future__ import annotations

import threading

from .test_app import make_app, settle, study_file, synth_template  # noqa: F401  (fixtures)

WATCHED = ("order", "frequency", "select", "undo")


def _record_threads(svc, entry_list) -> list[tuple[str, bool]]:
    """Wrap the service's queries (and the list's handle on ``order``): each call records its name
    and whether it ran on the main thread, the one Textual's UI runs on."""
    calls: list[tuple[str, bool]] = []

    def wrap(name, fn):
        def wrapped(*a, **kw):
            calls.append((name, threading.current_thread() is threading.main_thread()))
            return fn(*a, **kw)
        return wrapped

    for name in WATCHED:
        setattr(svc, name, wrap(name, getattr(svc, name)))
    entry_list._order = wrap("order", entry_list._order)
    return calls


async def test_reloads_counts_and_bulk_triage_run_off_the_ui_thread(study_file):
    from rmtui.screens.dialogs import ChoiceDialog
    from rmtui.widgets.entry_list import EntryList

    app = make_app(study_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        el = app.screen.query_one(EntryList)
        calls = _record_threads(app.service, el)
        await pilot.press("x")                   # all pairs: a reload
        await settle(pilot)
        n_all = el.total
        assert n_all == app.service.count(el.filt) > 0
        await pilot.press("right_square_bracket")  # sort descending: a reload
        await settle(pilot)
        while el.column_key != "regime":
            await pilot.press("l")
        await pilot.press("F")                   # frequency of the regime column
        await settle(pilot)
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("enter")               # drill down: a reload
        await settle(pilot)
        assert el.filt.regime is not None and 0 < el.total < n_all
        await pilot.press("g", "s")              # select every pair of the filter
        await settle(pilot)
        assert app.service.selection_count() == el.total
        await pilot.press("U")                   # undo that bulk select
        await settle(pilot)
        assert app.service.selection_count() == 0
    names = {n for n, _ in calls}
    assert names == set(WATCHED), calls
    assert [c for c in calls if c[1]] == [], calls  # none on the UI (main) thread
