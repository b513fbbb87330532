"""``rmtui bench ingest``: ingest rows/s per source kind (JSON lines, Parquet, --sql) against the record
path, with the process's peak RSS per stage."""

from __future__ import annotations

import typer

from .base import bench_app, console, styled

TARGET = 50_000  # rows/s (issue 28)


@bench_app.command("ingest")
def bench_ingest_cmd(
    n: int = typer.Option(1_000_000, "--n", min=1, help="Synthetic A/B-with-label records to ingest."),
    baseline_n: int = typer.Option(20_000, "--baseline-n", min=0,
                                   help="Records the record path (the baseline) reads; 0: no baseline."),
) -> None:
    """Write N A/B records as JSON lines and Parquet (not timed), ingest each into a fresh study (and
    the Parquet through --sql), then the first --baseline-n through the record path: seconds, rows/s,
    CPU seconds and peak RSS per stage, and the columnar pass's speed-up over the baseline."""
    from rich.table import Table

    from analysis.datasets.bench import bench_ingest

    with console.status("writing the sources") as status:
        b = bench_ingest(n, baseline_n=baseline_n or None, progress=lambda s: status.update(s))
    t = Table(title=f"bench ingest: {n:,} A/B records, 10 % ties (sources written in {b.write_seconds:.1f} s, "
                    "not timed)", title_justify="left", show_edge=False, pad_edge=False)
    for c in ("source", "rows", "s", "rows/s", "CPU s", "rows/CPU s", "peak MB", "x base"):
        t.add_column(c, justify="left" if c == "source" else "right", no_wrap=True)
    base = next((s for s in b.stages if s.name.endswith("record path")), None)
    for s in b.stages:
        ratio = f"{s.rows_per_s / base.rows_per_s:.1f}x" if base is not None and base.rows_per_s > 0 else "-"
        t.add_row(styled(s.name), f"{s.rows:,}", f"{s.seconds:.1f}", f"{s.rows_per_s:,.0f}",
                  f"{s.cpu_seconds:.1f}", f"{s.rows / s.cpu_seconds:,.0f}" if s.cpu_seconds > 0 else "-",
                  f"{s.peak_rss_mb:,.0f}" if s.peak_rss_mb is not None else "-", ratio)
    console.print(t)
    for s in b.stages:
        if s.added != s.rows:
            console.print(styled((f"{s.name}: {s.added:,} of {s.rows:,} rows added", "bold red")))
    fast = [s for s in b.stages if s is not base]
    worst = min(fast, key=lambda s: s.rows_per_s) if fast else None
    if worst is not None:
        verdict = "pass" if worst.rows_per_s >= TARGET else "FAIL"
        console.print(styled(f"slowest source {worst.name}: {worst.rows_per_s:,.0f} rows/s against the target of "
                             f"{TARGET:,} rows/s: {verdict} ({b.cores} cores, load average "
                             f"{b.load if b.load is not None else float('nan'):.1f} at the end)"))
