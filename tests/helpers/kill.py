"""SIGKILL an ``rmtui`` command at a chosen point of its work, not at a guessed fraction of its run time.

:func:`rmtui_killed_at` runs ``python -m rmtui ARGS`` in a subprocess whose function ``module:attr``
is wrapped: at its ``nth`` call the process sends itself SIGKILL ``before`` the call, ``after`` it
returned, or ``during`` it (a thread kills the process ``delay`` seconds after the call starts; if the
call returns first, the process is killed then, before it goes on). A real SIGKILL (no cleanup, no
atexit, no flush), landing where a test wants it every time: a timed kill of a whole command mostly
lands while Python imports torch, and costs a timed uninterrupted run to aim it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_WRAPPER = r"""
import importlib, os, signal, sys, threading, time
target, when, nth, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
mod_name, attr = target.split(":")
mod = importlib.import_module(mod_name)
orig = getattr(mod, attr)
calls = 0

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def wrapped(*a, **k):
    global calls
    calls += 1
    if calls != nth:
        return orig(*a, **k)
    if when == "before":
        die()
    if when == "during":
        t = threading.Thread(target=lambda: (time.sleep(delay), die()), daemon=True)
        t.start()
        orig(*a, **k)
        t.join()  # the thread kills the process: nothing after the call runs
    orig(*a, **k)  # after
    die()

setattr(mod, attr, wrapped)
from rmtui.cli import main
sys.argv = ["rmtui"] + sys.argv[5:]
main()
"""


def rmtui_killed_at(target: str, when: str, *args, nth: int = 1, delay: float = 0.0, timeout: float = 300,
                    env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``rmtui *args`` and SIGKILL it at ``target`` (``module:function``); see the module docstring.
    Asserts that it was killed there (it did not end before reaching the point)."""
    assert when in ("before", "during", "after"), when
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    r = subprocess.run([sys.executable, "-c", _WRAPPER, target, when, str(nth), str(delay), *map(str, args)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == -signal.SIGKILL, f"not killed at {target} ({when}): rc {r.returncode}\n{r.stdout}{r.stderr}"
    return r
