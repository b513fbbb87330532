"""Run the ``rmtui`` command in-process as a user meets it: through ``main()`` (its error guard prints
RmtuiError as one line), with stdout and stderr captured separately."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def all(self) -> str:
        return self.out + self.err


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    import os

    from rmtui.cli.base import console, err_console, main

    out, err = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    old_env = {k: os.environ.get(k) for k in (env or {})}
    sys.argv = ["rmtui", *map(str, args)]
    os.environ.update(env or {})
    code = 0
    widths = console.width, err_console.width
    console.width = err_console.width = 400  # long paths on one line, as the assertions read them
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        console.width, err_console.width = widths
        sys.argv = old_argv
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return CliResult(code, out.getvalue(), err.getvalue())
