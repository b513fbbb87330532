"""``rmtui run``: a study end to end from a TOML config, with rich progress."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from .base import app, console, err_console, quiet_libraries, SafeTextColumn, styled

# ---------------------------------------------------------------------------------------------
# rich rendering of the pipeline's progress


def _make_reporter():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from analysis.pipeline.run import ProgressHandle, Reporter, StepResult

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
    from analysis.pipeline.run import run_config

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
        from analysis.pipeline.config import EXAMPLE_CONFIG

        sys.stdout.write(EXAMPLE_CONFIG)
        return
    if config is None:
        raise typer.BadParameter("give a CONFIG.toml (or --print-config for an example)")
    _run_pipeline(config, study=study, force=force)
