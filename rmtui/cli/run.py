"""``rmtui run``, ``rmtui demo``, ``rmtui export``, ``rmtui report``."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from .base import app, console, err_console, quiet_libraries, SafeTextColumn, styled

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# rich rendering of the pipeline's progress


def _make_reporter():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from analysis.pipeline import ProgressHandle, Reporter, StepResult

    class RichReporter(Reporter):
        def __init__(self) -> None:
            self.prog = Progress(SafeTextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
            self.prog.start()

        def stop(self) -> None:
            self.prog.stop()

        def step_start(self, step: str, description: str) -> None:
            if step.startswith(("score:", "featurize:", "rewrite", "robustness")):
                quiet_libraries()  # these steps load models; quiet transformers before it prints
            console.print(styled((f"→ {step}", "bold"), f": {description} ..."))

        def step_end(self, result: StepResult) -> None:
            if result.ran:
                console.print(styled((f"✓ {result.step}", "green"), f": {result.message} ", (f"({result.seconds:.1f} s)", "dim")))
            else:
                console.print(styled((f"· {result.step}: up to date, skipped", "dim")))

        def progress(self, description: str, total: int | None = None) -> ProgressHandle:
            task = self.prog.add_task(description, total=total)
            prog = self.prog
            plain = not console.is_terminal  # logs (nohup, CI, pipes): a line every 10 %
            state = {"next": 0.1, "desc": description, "total": total}

            def update(completed=None, total=None, description=None):
                if total:
                    state["total"] = total
                t = state["total"]
                if plain and completed is not None and t:
                    if completed / t >= state["next"]:
                        console.print(f"  {state['desc']}: {completed:,}/{int(t):,}")
                        while completed / t >= state["next"]:
                            state["next"] += 0.1
                kw = {}
                if completed is not None:
                    kw["completed"] = completed
                if total is not None:
                    kw["total"] = total
                if description:
                    kw["description"] = description
                prog.update(task, **kw)

            handle = ProgressHandle(update)
            handle.total = total
            handle.close = lambda: prog.remove_task(task)  # type: ignore[method-assign]
            return handle

    return RichReporter()


def _sigterm_as_interrupt() -> None:
    def handler(signum, frame):  # pragma: no cover - exercised by a subprocess
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def _run_pipeline(config, study=None, force: bool = False):
    from analysis.pipeline import run_config

    # transformers is imported only by steps that need it (a run with every step done starts fast);
    # these variables keep it quiet from its first import on
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _sigterm_as_interrupt()
    reporter = _make_reporter()
    try:
        result = run_config(config, reporter, study=study, force=force)
    except KeyboardInterrupt:
        reporter.stop()
        err_console.print(styled(("interrupted; rerun to resume", "yellow"), " (finished steps and committed chunks "
                          "stay in the study)"))
        raise typer.Exit(130)
    finally:
        reporter.stop()
    ran = len(result.ran)
    console.print(styled(("done", "bold"), f": {ran} step{'s' if ran != 1 else ''} ran, {len(result.skipped)} up to date, "
                  f"{result.seconds:.1f} s; study {result.study}"))
    return result


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="The run configuration (TOML)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print a commented example config and exit."),
    study: Optional[str] = typer.Option(None, "--study", "-s", help="Override the config's study file."),
    force: bool = typer.Option(False, "--force", help="Redo every step (cached scores and labels are still reused)."),
) -> None:
    """Run a study end to end: ingest -> score -> featurize -> fit -> rewrite experiment.

    Steps whose inputs and settings are unchanged are skipped; Ctrl-C stops cleanly and the next run
    resumes where it stopped.
    """
    if print_config:
        from analysis.config import EXAMPLE_CONFIG

        sys.stdout.write(EXAMPLE_CONFIG)
        return
    if config is None:
        raise typer.BadParameter("give a CONFIG.toml (or --print-config for an example)")
    _run_pipeline(config, study=study, force=force)


# ---------------------------------------------------------------------------------------------
# demo


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
    from analysis.fit import summary
    from analysis.store import open_study

    with open_study(study_path, read_only=True) as st:
        data = summary(st)
    try:
        from .fit import _print_summary
    except ImportError:  # pragma: no cover - the summary command is part of the metrics module
        _print_summary = None
    if _print_summary is not None:
        _print_summary(data)
        return
    from rich.table import Table

    from analysis.report import summary_tables

    for title, header, rows in summary_tables(data):
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*[str(x) for x in r])
        console.print(t)


def open_app(study_path: Path) -> None:
    """Open the Textual app on a study (imported lazily: the app pulls in Textual)."""
    try:
        from rmtui.app import RmtuiApp
    except ImportError as e:
        err_console.print(styled(("App", "bold red"), f": the terminal app is not available ({e}); use --no-tui"))
        raise typer.Exit(1)
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
) -> None:
    """Build (once) a study from the shipped sample data with the embedded RMs, then open it.

    By default the first 600 pairs of each hh-rlhf subset (2,400 pairs, 4,800 texts) are scored by
    both RMs on the CPU; --full takes all 8,552. Later calls find every step done and open the study
    at once; adding --full to a built demo scores only the new pairs.
    """
    import dataclasses

    from analysis.config import load_config

    path = study or default_demo_study()
    if rebuild:
        for p in (path, Path(str(path) + ".wal")):
            if p.exists():
                p.unlink()
    cfg = load_config(config or demo_config_path())
    if not full:
        cfg = dataclasses.replace(cfg, data=[dataclasses.replace(d, limit=min(d.limit or pairs, pairs))
                                             for d in cfg.data])
    t0 = time.perf_counter()
    _run_pipeline(cfg, study=path)
    console.print(f"demo study ready in {time.perf_counter() - t0:.1f} s: {path}")
    if no_tui:
        print_summary(path)
    else:
        open_app(path)


# ---------------------------------------------------------------------------------------------
# export and report


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
    from analysis.export import export_pairs
    from analysis.store import open_study

    from analysis.store.browse import list_values

    from analysis.choices import resolve
    from analysis.errors import RmtuiError
    from analysis.store.browse import REGIMES
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
    """The app's entry filter (analysis.store.browse.EntryFilter) from CLI options: all pairs by default."""
    from analysis.store.browse import EntryFilter

    return EntryFilter(regime=regime, subset=subset, tag=tag, search=search or None, selected=selected)


@app.command()
def report(
    study: Path = typer.Option(..., "--study", "-s", help="The study file (DuckDB)."),
    out: Path = typer.Option(..., "-o", "--output", help="The folder to write the report into."),
) -> None:
    """Write a self-contained Markdown and HTML report with PNG figures (and summary.json)."""
    from analysis.report import write_report
    from analysis.store import open_study

    t0 = time.perf_counter()
    with open_study(study, read_only=True) as st:
        try:
            res = write_report(st, out)
        except OSError as e:  # a read-only folder, a full disk
            from analysis.errors import RmtuiError

            raise RmtuiError(f"{e.filename or out}: cannot write the report: {e.strerror or e}", "Report") from e
    console.print(f"wrote {res.markdown}, {res.html} and {len(res.figures)} figures in {time.perf_counter() - t0:.1f} s")
