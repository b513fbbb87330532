"""``rmtui demo``: build (once) a study from the shipped sample data with the embedded RMs, open it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

from .base import app, bench_app, console
from .run import _run_pipeline

ROOT = Path(__file__).resolve().parents[2]


def default_demo_study() -> Path:
    """``$RMTUI_CACHE/demo.duckdb`` (default ``~/.cache/rmtui``, beside the embedded models), or
    ``./rmtui-demo.duckdb`` where that folder cannot be written."""
    cache = Path(os.environ.get("RMTUI_CACHE") or Path.home() / ".cache" / "rmtui")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / ".write-test"
        probe.write_text("")
        probe.unlink()
        return cache / "demo.duckdb"
    except OSError:
        return Path("rmtui-demo.duckdb")


# 2 CPU cores score about 60 texts/s with each embedded RM: 600 pairs per subset keep the first
# build of the demo within a few minutes; --full scores all 8,552 pairs.
DEMO_PAIRS_PER_SUBSET = 600


def demo_config_path() -> Path:
    return ROOT / "configs" / "demo.toml"


def print_summary(study_path: Path) -> None:
    """Print the study's summary: what `rmtui summary` prints (agreement, regimes, imprint, ...)."""
    from analysis.fit.study_fit import summary
    from analysis.store import open_study

    with open_study(study_path, read_only=True) as st:
        data = summary(st)
    from .fit import _print_summary

    _print_summary(data)


def open_app(study_path: Path) -> None:
    """Open the Textual app on a study (imported lazily: the app pulls in Textual)."""
    from rmtui.app import RmtuiApp

    rc = RmtuiApp(str(study_path)).run()
    if rc:
        raise typer.Exit(rc if isinstance(rc, int) else 1)


@app.command()
def demo(
    study: Optional[Path] = typer.Option(None, "--study", "-s",
                                         help="Where to build the demo study (default ~/.cache/rmtui/demo.duckdb)."),
    no_tui: bool = typer.Option(False, "--no-tui", help="Print the summary instead of opening the app."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Delete the demo study and build it again."),
    config: Optional[Path] = typer.Option(None, "--config", hidden=True,
                                          help="Another config than configs/demo.toml (tests)."),
    pairs: int = typer.Option(DEMO_PAIRS_PER_SUBSET, "--pairs", min=1,
                              help="Pairs read from each of the four hh-rlhf subsets (the first N lines)."),
    full: bool = typer.Option(False, "--full", help="All 8,552 pairs (about 3x the scoring time of the default)."),
    compute_all: bool = typer.Option(False, "--compute-all", help="Compute every score and label here instead of "
                                     "taking the shipped ones (sample_data/demo-results) after a verified sample."),
) -> None:
    """Build (once) a study from the shipped sample data with the embedded RMs, then open it.

    By default the first 600 pairs of each hh-rlhf subset (2,400 pairs, 4,800 texts) are scored by
    both RMs on the CPU; --full takes all 8,552. Later calls find every step done and open the study
    at once; adding --full to a built demo scores only the new pairs.
    """
    import dataclasses

    from analysis.pipeline.config import load_config

    path = study or default_demo_study()
    if rebuild:
        for p in (path, Path(str(path) + ".wal")):
            if p.exists():
                p.unlink()
    cfg = load_config(config or demo_config_path())
    if not full:
        cfg = dataclasses.replace(cfg, data=[dataclasses.replace(d, limit=min(d.limit or pairs, pairs))
                                             for d in cfg.data])
    if compute_all:
        cfg = dataclasses.replace(cfg, precomputed=None)
    t0 = time.perf_counter()
    result = _run_pipeline(cfg, study=path)
    console.print(f"demo study ready in {time.perf_counter() - t0:.1f} s: {path}")
    if no_tui:
        t1 = time.perf_counter()
        print_summary(path)
        print_timings(result, summary_s=time.perf_counter() - t1)
    else:
        print_timings(result)  # seen after the app closes (the app draws on the alternate screen)
        open_app(path)


def _process_seconds() -> float | None:
    """Seconds since this process started (Linux /proc), so the total includes Python's imports."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _short_step(step: str) -> str:
    """``ingest:hh-rlhf/harmless-base-test.jsonl.gz`` -> ``ingest harmless-base-test`` (fits 80 columns)."""
    if step.startswith("ingest:"):
        return "ingest " + Path(step.split(":", 1)[1]).name.split(".", 1)[0]
    return step


def _how(summary: dict) -> str:
    """How a step got its results: computed here, or taken from the shipped results (how many, of
    what, after how many recomputed texts agreed), or why the shipped ones were not used."""
    checks = summary.get("precomputed_checks") or []
    if not checks:
        return "computed here"
    bad = [c for c in checks if not c["verified"]]
    if bad:
        return f"computed here: shipped {bad[0]['what']} not used ({bad[0]['reason']})"
    taken = ", ".join(f"{c['what'].replace('featurizer ', '')} {c['n_taken']:,}" for c in checks)
    worst = max(float(c["max_abs_diff"] or 0.0) for c in checks)
    return f"shipped: {taken}; {checks[0]['n_checked']} recomputed each agreed (max diff {worst:.0e})"


def print_timings(result, summary_s: float | None = None) -> None:
    """The per-step timing table of a demo build (and the whole command's seconds so far)."""
    from rich.table import Table

    from .base import styled

    t = Table(title="demo: seconds per step", title_justify="left", show_edge=False, pad_edge=False)
    t.add_column("step", no_wrap=True)
    t.add_column("s", justify="right", no_wrap=True)
    t.add_column("how", overflow="fold")
    for s in result.steps:
        how = "up to date" if not s.ran else _how(s.summary)
        t.add_row(styled(_short_step(s.step)), f"{s.seconds:.1f}", styled(how))
    t.add_row("all steps", f"{result.seconds:.1f}", "")
    if summary_s is not None:
        t.add_row("summary", f"{summary_s:.1f}", "printed above")
    total = _process_seconds()
    if total is not None:
        t.add_row(styled(("total", "bold")), f"{total:.1f}", "this command, from its start (Python imports included)")
    console.print(t)


@bench_app.command("demo")
def bench_demo_cmd(
    pairs: int = typer.Option(DEMO_PAIRS_PER_SUBSET, "--pairs", min=1, help="Pairs of each hh-rlhf subset."),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Only the build with the shipped results."),
    config: Optional[Path] = typer.Option(None, "--config", hidden=True, help="Another config (tests)."),
) -> None:
    """The demo built twice in fresh studies, with the shipped precomputed results and with every step
    computed here (the baseline), seconds per step, and the largest difference between their figures."""
    from rich.table import Table

    from analysis.pipeline.bench import bench_demo

    from .base import styled
    from .run import _make_reporter

    reporter = _make_reporter()
    try:
        b = bench_demo(config or demo_config_path(), pairs, baseline=not no_baseline, progress=reporter)
    finally:
        reporter.stop()
    t = Table(title=f"bench demo: {pairs:,} pairs per subset, seconds per step", title_justify="left",
              show_edge=False, pad_edge=False)
    t.add_column("step")
    for r in b.runs:
        t.add_column(r.label, justify="right")
    if len(b.runs) == 2:
        t.add_column("ratio", justify="right")
    steps = list(dict.fromkeys(s for r in b.runs for s, _, _ in r.steps))
    for name in steps + ["total"]:
        vals = [r.seconds if name == "total" else next((sec for s, sec, _ in r.steps if s == name), float("nan"))
                for r in b.runs]
        row = [styled(_short_step(name))] + [f"{v:.1f}" for v in vals]
        if len(vals) == 2:
            row.append(f"{vals[1] / vals[0]:.1f}x" if vals[0] > 0 else "-")
        t.add_row(*row)
    console.print(t)
    for r in b.runs:
        console.print(styled(f"{r.label}: agreement ", *[f"{k} {v:.4f} " for k, v in sorted(r.agreement.items())]))
    if len(b.runs) == 2:
        console.print(styled(f"figures compared: {b.n_compared:,}; largest difference {b.max_abs_diff:.2e}"
                             + (f" ({b.worst})" if b.worst else "") + f"; counts that differ: {b.n_differing_counts}"))
