"""``rmtui demo``: build (once) a study from the shipped sample data with the embedded RMs, open it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

from .base import app, console
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
    t0 = time.perf_counter()
    _run_pipeline(cfg, study=path)
    console.print(f"demo study ready in {time.perf_counter() - t0:.1f} s: {path}")
    if no_tui:
        print_summary(path)
    else:
        open_app(path)
