"""``rmtui ingest``: read preference datasets into a study."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, console, SafeTextColumn, styled


@app.command()
def ingest(
    sources: List[str] = typer.Argument(..., help="Files (JSONL/CSV/Parquet, .gz ok) or hf:NAME datasets."),
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    subset: Optional[str] = typer.Option(None, help="Subset name (default: from the file name)."),
    split: Optional[str] = typer.Option(None, help="Split name (default: from the file name)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="hh | jsonl | csv | parquet (default: from the name)."),
    map_: Optional[List[str]] = typer.Option(
        None, "--map", help="Column mapping, e.g. --map chosen=response_a,rejected=response_b,prompt=question."
    ),
    hf_split: str = typer.Option("train", help="Split of an hf: dataset."),
    data_dir: Optional[str] = typer.Option(None, help="data_dir of an hf: dataset (e.g. harmless-base)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Read at most N rows per source."),
    strict: bool = typer.Option(False, help="Stop at the first bad row (non-zero exit naming file and line)."),
) -> None:
    """Read preference pairs into the study. Re-ingesting the same data adds nothing."""
    import time

    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from analysis.data import READ_STOPPED, ReadOptions, parse_mapping
    from analysis.ingest import ingest as do_ingest
    from analysis.store import open_study
    from analysis.store.pairs import pair_counts

    mapping = parse_mapping(map_)
    t0 = time.perf_counter()
    results = []
    with open_study(study) as st:
        with Progress(SafeTextColumn("{task.description}"), BarColumn(), SafeTextColumn("{task.completed} pairs"),
                      TimeElapsedColumn(), console=console, transient=True) as prog:
            for src in sources:
                task = prog.add_task(f"ingest {src}", total=None)
                opts = ReadOptions(subset=subset, split=split, fmt=fmt, mapping=mapping, hf_split=hf_split,
                                   hf_data_dir=data_dir, limit=limit)
                res = do_ingest(st, src, opts, strict=strict, progress=lambda n, t=task: prog.advance(t, n))
                results.append(res)
        counts = pair_counts(st)
        total = int(counts["pairs"].sum()) if len(counts) else 0
    dt = time.perf_counter() - t0

    table = Table(title=f"Study {study}: {total:,} pairs", title_justify="left")
    for col in ("subset", "split", "pairs", "identical", "context_differs"):
        table.add_column(col, justify="right" if col not in ("subset", "split") else "left")
    for r in counts.itertuples():
        table.add_row(r.subset, r.split, f"{r.pairs:,}", f"{r.identical:,}", f"{r.context_differs:,}")
    console.print(table)
    for res in results:
        console.print(
            f"{res.source}: read {res.n_read:,} pairs, added {res.n_added:,}, "
            f"skipped {len(res.skipped):,} bad rows, flagged {len(res.flagged):,} (identical pairs, empty responses)"
        )
        stopped = [i for i in res.skipped if i.kind in READ_STOPPED]
        for issue in res.skipped[:10] + [i for i in stopped if i not in res.skipped[:10]]:
            console.print(styled("  ", ("skipped", "yellow"), " ", issue.describe()))
        if not res.n_read and not res.skipped:
            console.print(styled("  ", ("no pairs", "yellow"), f": {res.source} holds no rows (an empty file?)"))
        if len(res.skipped) > 10:
            console.print(f"  ... and {len(res.skipped) - 10} more (see table ingest_issues)")
        for issue in res.flagged[:5]:
            console.print(styled("  ", ("flagged", "cyan"), " ", issue.describe()))
        if len(res.flagged) > 5:
            console.print(f"  ... and {len(res.flagged) - 5} more flags (table ingest_issues)")
    console.print(f"done in {dt:.2f} s")
    # a source without one pair (bad rows only, or empty), or one that stopped before its end (a cut-off
    # .gz: the pairs before the cut are kept): not a success for a script
    if any(not r.n_read or any(i.kind in READ_STOPPED for i in r.skipped) for r in results):
        raise typer.Exit(1)
