"""``rmtui report``: a self-contained Markdown and HTML report with figures."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from .base import app, console


@app.command()
def report(
    study: Path = typer.Option(..., "--study", "-s", help="The study file (DuckDB)."),
    out: Path = typer.Option(..., "-o", "--output", help="The folder to write the report into."),
) -> None:
    """Write a self-contained Markdown and HTML report with PNG figures (and summary.json)."""
    from analysis.report.document import write_report
    from analysis.store import open_study

    t0 = time.perf_counter()
    with open_study(study, read_only=True) as st:
        try:
            with console.status("report: summary, figures, tables"):  # a spinner on a terminal, nothing in a log
                res = write_report(st, out)
        except OSError as e:  # a read-only folder, a full disk
            from analysis.errors import RmtuiError

            raise RmtuiError(f"{e.filename or out}: cannot write the report: {e.strerror or e}", "Report") from e
    for w in res.warnings:  # library warnings, captured and made visible (never a raw data character)
        console.print(f"warning: {w}", soft_wrap=True)
    console.print(f"wrote {res.markdown}, {res.html} and {len(res.figures)} figures in {time.perf_counter() - t0:.1f} s")
