"""``rmtui export``: pairs with everything the study knows about them, for scripts (the app's export)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import app, console


@app.command()
def export(
    study: Path = typer.Option(..., "--study", "-s", help="The study file (DuckDB)."),
    out: Path = typer.Option(..., "-o", "--output", help="The file to write."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="jsonl | csv | md | parquet (default: by the "
                                      "output's extension)"),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only pairs with this tag."),
    regime: Optional[str] = typer.Option(None, "--regime", help="Only pairs in this regime (e.g. resists_alignment)."),
    subset: Optional[str] = typer.Option(None, "--subset", help="Only pairs of this dataset subset."),
    selected: bool = typer.Option(False, "--selected", help="Only the pairs selected in the app."),
    search: Optional[str] = typer.Option(None, "--search", help="Only pairs whose texts contain TEXT."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output file if it exists."),
) -> None:
    """Export pairs with their texts, scores, features, tags and notes (the app's export, for scripts)."""
    from analysis.report.export import export_pairs
    from analysis.store import open_study

    from analysis.choices import resolve
    from analysis.errors import RmtuiError
    from analysis.metrics.regime_names import REGIMES
    from analysis.store.entries import list_values
    from analysis.textsafe import visible_line

    fmt = resolve("--format", fmt, ("jsonl", "csv", "md", "parquet"), aliases={"markdown": "md", "json": "jsonl"})
    # a unique prefix of a regime is accepted, as the app's list shows them (resists, got, stayed)
    regime = resolve("--regime", regime, REGIMES)
    with open_study(study, read_only=True) as st:
        known = list_values(st)
        for flag, value, field in (("--regime", regime, "regime"), ("--subset", subset, "subset"), ("--tag", tag, "tag")):
            if value is not None and value not in known[field]:
                if field == "regime":
                    raise RmtuiError(f"--regime {regime}: no pair of the study is in it (the study has "
                                     f"{', '.join(map(str, known[field])) or 'none'})", "Export")
                raise RmtuiError(f"{flag} {visible_line(value)!r}: the study has "
                                 f"{', '.join(visible_line(v) for v in known[field]) or 'none'}", "Export")
        filt = _make_filter(tag=tag, regime=regime, subset=subset, selected=selected, search=search)
        res = export_pairs(st, filt, fmt, str(out), overwrite=force)
    console.print(f"wrote {res.path}: {res.n:,} pair{'s' if res.n != 1 else ''} ({filt.describe()})"
                  + (f"; metadata in {res.meta_path}" if res.meta_path else ""))


def _make_filter(*, tag, regime, subset, selected, search):
    """The app's entry filter (analysis.store.filters.EntryFilter) from CLI options: all pairs by default."""
    from analysis.store.filters import EntryFilter

    return EntryFilter(regime=regime, subset=subset, tag=tag, search=search or None, selected=selected)
