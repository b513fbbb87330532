"""``rmtui explore``: open the Textual app on a study."""

from __future__ import annotations

from typing import Optional

import typer

from .base import DEFAULT_STUDY, app, fail


@app.command()
def explore(
    study: str = typer.Argument(DEFAULT_STUDY, help="The study file (DuckDB)."),
    regime: str = typer.Option("resists_alignment", help="Start filtered to this regime ('all' for every pair)."),
    read_only: bool = typer.Option(False, "--read-only", help="Open read-only (triage and rewrites cannot be saved)."),
    keymap: Optional[str] = typer.Option(None, help="Keymap TOML (default: $RMTUI_KEYMAP or ~/.config/rmtui/keymap.toml)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let the study's models that ship "
                                           "their own code run it when the app rescores (each time; or "
                                           "RMTUI_TRUST_REMOTE_CODE=1)."),
) -> None:
    """Browse the study: coefficients, regimes, entries; rewrite, rescore, tag, export. Keys: ? for help."""
    from pathlib import Path

    from analysis.metrics.regime_names import REGIMES
    from analysis.store.filters import EntryFilter

    if not Path(study).exists():
        raise fail("Study not found", f"{study}: no such file (create one with rmtui ingest)")
    if regime != "all" and regime not in REGIMES:
        raise fail("Regime", f"{regime!r}: one of all, {', '.join(REGIMES)}")
    from ..app import RmtuiApp

    rc = RmtuiApp(study, read_only=read_only, keymap=keymap, trust_remote_code=trust_remote_code,
                  initial_filter=EntryFilter(regime=None if regime == "all" else regime)).run()
    if rc:
        raise typer.Exit(rc if isinstance(rc, int) else 1)
