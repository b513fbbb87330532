"""The typer app every command registers on, the console, and the error guard."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="rmtui",
    help="What did a reward model learn from a preference dataset, and where does it part ways "
    "with the humans who labelled it? (SEAL, arXiv 2408.10270)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
bench_app = typer.Typer(help="Benchmarks that print numbers (texts/s, ratios to a naive baseline).",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STUDY_OPTION_HELP = "The study file (DuckDB)."
DEFAULT_STUDY = "study.duckdb"


def quiet_libraries() -> None:
    """Keep transformers/HF from printing progress bars and warnings into our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except Exception:  # pragma: no cover - transformers missing is reported where it is needed
        pass


def fail(title: str, message: str, code: int = 1) -> "typer.Exit":
    from rich.markup import escape

    err_console.print(f"[bold red]{escape(title)}[/]: {escape(message)}")  # messages quote [[data]], paths
    return typer.Exit(code)


def main() -> None:
    from analysis.errors import RmtuiError

    try:
        app()
    except RmtuiError as e:
        from rich.markup import escape

        err_console.print(f"[bold red]{escape(e.title)}[/]: {escape(e.message)}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted[/]: what was committed stays in the study; rerun to resume.")
        sys.exit(130)
