"""Waiting for the app to be idle before a test compares anything (issue 25, item 8).

A snapshot or an assertion taken while a worker still runs (a list reload, counts, the watcher's
reload when the study file changed) compares a screen half-way: it passed alone and failed in a
loaded full run. :func:`wait_idle` waits until no worker is pending or running and no message is
left for several rounds in a row; :func:`idle_before` wraps a snapshot's ``run_before`` (and its key
presses) so that the screenshot is taken only then, with the app's study watcher paused so that no
new reload starts between the last check and the screenshot. Every snapshot in ``tests/rmtui`` goes
through it (the ``snap_compare`` fixture of tests/rmtui/conftest.py)."""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Iterable

QUIET_ROUNDS = 3
MAX_ROUNDS = 400  # a bound, not a time: an app that never settles fails the test instead of hanging


def busy_workers(app) -> list:
    return [w for w in app.workers if not w.is_finished]


async def wait_idle(pilot, quiet_rounds: int = QUIET_ROUNDS) -> None:
    """Return once the app has had no pending or running worker for ``quiet_rounds`` pauses in a row."""
    app = pilot.app
    quiet = 0
    for _ in range(MAX_ROUNDS):
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        if busy_workers(app):
            quiet = 0
            continue
        quiet += 1
        if quiet >= quiet_rounds:
            return
    raise AssertionError(f"the app never became idle: {busy_workers(app)}")


def hold_still(app) -> None:
    """Pause the app's timer that reloads the list when another process wrote the study."""
    timer = getattr(app, "_watch_timer", None)
    if timer is not None:
        timer.pause()


def idle_before(run_before: Callable[[Any], Awaitable[None] | None] | None = None,
                press: Iterable[str] = ()) -> Callable[[Any], Awaitable[None]]:
    """A ``run_before`` for ``snap_compare``: wait idle, run ``run_before``, press the keys, wait idle,
    pause the study watcher, wait idle once more."""
    keys = list(press)

    async def run(pilot) -> None:
        await wait_idle(pilot)
        if run_before is not None:
            result = run_before(pilot)
            if inspect.isawaitable(result):
                await result
        await wait_idle(pilot)
        for k in keys:
            await pilot.press(k)
            await wait_idle(pilot, 1)
        hold_still(pilot.app)
        await wait_idle(pilot)

    return run
