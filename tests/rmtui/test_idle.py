"""The UI tests' idle wait (issue 25, item 8): a snapshot is taken only once no worker is pending or
running. pytest-textual-snapshot's own flow (run_before, press the keys, pause, screenshot) took the
screenshot while a worker that a key started was still running, so the snapshot depended on the
machine's load (tests/rmtui/test_app.py::test_snapshot_empty_filter failed in full runs)."""

from __future__ import annotations

import threading

from textual._doc import take_svg_screenshot
from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.helpers.app import busy_workers, idle_before, wait_idle


class Slow(App):
    """A key starts a thread worker (a list reload, say) that takes a moment and then updates the screen."""

    BINDINGS = [("x", "reload", "reload")]

    def __init__(self, release: threading.Event, give_up_s: float = 30.0) -> None:
        super().__init__()
        self.release = release  # the worker's "work" ends when the test says so (no timing in the test)
        self.give_up_s = give_up_s  # ... or, never released, gives up (so the app can exit)

    def compose(self) -> ComposeResult:
        yield Static("before", id="n")

    def action_reload(self) -> None:
        self.run_worker(self._work, thread=True)

    def _work(self) -> None:
        if not self.release.wait(self.give_up_s):
            return
        self.call_from_thread(self.query_one("#n", Static).update, "reloaded")


def test_the_plugin_flow_screenshots_a_running_worker_idle_before_does_not():
    never = threading.Event()
    app = Slow(never, give_up_s=1.0)
    raw = take_svg_screenshot(app=app, press=["x"], terminal_size=(40, 5))
    assert busy_workers(app) or not never.is_set()
    assert "reloaded" not in raw and "before" in raw  # what the old snapshots compared: half-way
    never.set()
    later = threading.Event()
    threading.Timer(0.2, later.set).start()  # the worker finishes whenever; the screenshot waits for it
    idle = take_svg_screenshot(app=Slow(later), terminal_size=(40, 5), run_before=idle_before(None, ["x"]))
    assert "reloaded" in idle


async def test_wait_idle_returns_with_no_worker_left():
    release = threading.Event()
    app = Slow(release)
    async with app.run_test() as pilot:
        await pilot.press("x")
        assert busy_workers(app)
        release.set()
        await wait_idle(pilot)
        assert not busy_workers(app) and str(app.query_one("#n", Static).render()) == "reloaded"
