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


class PlainProgress:
    """What long work shows when the output is not a terminal (a log, a pipe, CI): nothing while it
    runs, then one line per task when it ends ("featurize heuristic: 4,800/4,800 texts in 3.1 s").
    The subset of rich's Progress the commands use."""

    def __init__(self, unit: str = "", out=None) -> None:
        self.unit = unit
        self.out = out or console
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for tid in list(self.tasks):
            self.remove_task(tid)

    def add_task(self, description: str, total: float | None = None, **fields) -> int:
        import time

        self._next = getattr(self, "_next", 0) + 1  # a fresh id per task
        tid = self._next
        self.tasks[tid] = {"description": description, "total": total, "completed": 0, "t0": time.perf_counter()}
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               description: str | None = None, advance: float | None = None, **fields) -> None:
        t = self.tasks.get(task_id)
        if t is None:  # ended (and said so) already
            return
        if completed is not None:
            t["completed"] = completed
        if advance:
            t["completed"] += advance
        if total is not None:
            t["total"] = total
        if description:
            t["description"] = description
        if t["total"] and t["completed"] >= t["total"]:  # done: its one line now
            self.remove_task(task_id)

    def remove_task(self, task_id: int) -> None:
        import time

        t = self.tasks.pop(task_id, None)
        if t is None:
            return
        done, total = int(t["completed"]), t["total"]
        count = f"{done:,}" + (f"/{int(total):,}" if total else "") + (f" {self.unit}" if self.unit else "")
        self.out.print(styled(t["description"], f": {count} in {time.perf_counter() - t['t0']:.1f} s"))


def progress_bar(unit: str = "", *, transient: bool = True, rate: bool = False):
    """Progress for long work (ingest, labels, scoring, rewrites, training): on a terminal a rich bar
    with the count done / total, the share, the time so far and an ETA (the count alone and no ETA
    while the total is unknown); else :class:`PlainProgress`, one line per task when it ends."""
    if not console.is_terminal:
        return PlainProgress(unit)
    from rich.progress import BarColumn, Progress, ProgressColumn, TimeElapsedColumn, TimeRemainingColumn

    class CountColumn(ProgressColumn):
        def render(self, task) -> Text:
            done = f"{int(task.completed):,}"
            text = done + (f"/{int(task.total):,}" if task.total else "") + (f" {unit}" if unit else "")
            if task.total:
                text += f" {100 * task.completed / task.total:3.0f}%"
            return Text(text, style="progress.download")

    cols = [SafeTextColumn("{task.description}"), BarColumn(), CountColumn()]
    if rate:
        cols.append(SafeTextColumn("{task.fields[rate]}"))
    cols += [TimeElapsedColumn(), SafeTextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*cols, console=console, transient=transient)

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
