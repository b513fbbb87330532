"""The typer app every command registers on, the console, and the error guard."""

from __future__ import annotations

import os
import sys

import typer

from analysis.models.quiet import quiet_transformers as quiet_libraries  # noqa: F401  (the commands' name)
from rich.console import Console
from rich.text import Text

from analysis.textsafe import visible

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


class SafeConsole(Console):
    """The CLI's console: no string is ever parsed as markup or emoji, control characters are shown.

    Every str that reaches it (print arguments, table cells and titles, status text) goes through
    :func:`analysis.textsafe.visible` and is taken literally: a subset named ``safety[/red]``, a
    search ``[bold]``, a model named ``m`` or ``file:100:`` print as they are. Styling is only ever
    given as ``Text`` built by :func:`styled`.
    """

    def __init__(self, **kw) -> None:
        kw.setdefault("highlight", False)
        super().__init__(markup=False, emoji=False, **kw)

    def render_str(self, text: str, **kw) -> Text:  # type: ignore[override]
        kw["markup"] = False
        kw["emoji"] = False
        kw["highlight"] = False
        return super().render_str(visible(text), **kw)

    def status(self, status, **kw):  # type: ignore[override]
        # rich's Spinner parses a str status as markup
        return super().status(Text(visible(status)) if isinstance(status, str) else status, **kw)


def styled(*parts: "str | tuple[str, str] | Text") -> Text:
    """A line from parts: a str is plain data, ``(text, style)`` is styled; every text made visible."""
    t = Text()
    for p in parts:
        if isinstance(p, Text):
            t.append_text(p)
        elif isinstance(p, tuple):
            t.append(visible(p[0]), style=p[1])
        else:
            t.append(visible(p))
    return t


def SafeTextColumn(text_format: str, **kw):
    """rich's TextColumn without markup, the formatted text made visible (task descriptions name models)."""
    from rich.progress import TextColumn

    class _Col(TextColumn):
        def render(self, task) -> Text:
            return Text(visible(self.text_format.format(task=task)), style=self.style, justify=self.justify)

    return _Col(text_format, markup=False, **kw)


console = SafeConsole()
err_console = SafeConsole(stderr=True)

STUDY_OPTION_HELP = "The study file (DuckDB)."
DEFAULT_STUDY = "study.duckdb"


def fail(title: str, message: str, code: int = 1) -> "typer.Exit":
    print_error(title, message)
    return typer.Exit(code)


def print_error(title: str, message: str) -> None:
    """One line on stderr: the title in bold red, the message as it is (it quotes data and paths), a
    newline in it (a file name's, say) shown as ``␊`` so the message stays one line."""
    from analysis.textsafe import visible_line

    err_console.print(styled((title, "bold red"), ": ", visible_line(message)), soft_wrap=True)


def main() -> None:
    from analysis.errors import RmtuiError

    try:
        app()
    except RmtuiError as e:
        print_error(e.title, e.message)
        sys.exit(1)
    except OSError as e:  # the last guard: a folder that cannot be written, a full disk
        where = e.filename or ""
        print_error("File", f"{where}: {e.strerror or e}" if where else str(e))
        sys.exit(1)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        if type(e).__module__.startswith(("duckdb", "_duckdb")):
            from analysis.store.core import translate_duckdb_error

            known = translate_duckdb_error(e)  # a study file cut short, ...
            if known is not None:
                print_error(known.title, known.message)
                sys.exit(1)
            print_error("Study", first or type(e).__name__)  # the last guard
            sys.exit(1)
        if os.environ.get("RMTUI_DEBUG", "").strip() not in ("", "0"):
            raise
        # a bug of rmtui's own: one line, not a traceback; RMTUI_DEBUG=1 shows it for a report
        print_error("Internal error", f"{type(e).__name__}: {first} (a bug in rmtui: rerun with "
                    "RMTUI_DEBUG=1 for the traceback and report it)")
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print(styled(("Interrupted", "yellow"), ": what was committed stays in the study; rerun to resume."))
        sys.exit(130)
