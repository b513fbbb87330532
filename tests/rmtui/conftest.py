"""Every app snapshot in tests/rmtui is taken with the app idle (workers done): see tests/helpers/app.py."""

from __future__ import annotations

import pytest

from tests.helpers.app import idle_before


@pytest.fixture
def snap_compare(snap_compare):
    """pytest-textual-snapshot's ``snap_compare``, with the key presses and ``run_before`` run through
    :func:`tests.helpers.app.idle_before`, so the screenshot waits until the app is idle."""

    def compare(app, press=(), terminal_size=(80, 24), run_before=None):
        return snap_compare(app, terminal_size=terminal_size, run_before=idle_before(run_before, press))

    return compare
