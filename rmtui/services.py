"""The app's headless core: every call the UI makes into ``analysis`` goes through here.

The UI (screens, widgets) never imports ``analysis`` modules directly except for types; it calls a
:class:`StudyService`. Heavy parts (reward models, rewriting) are imported lazily, on first use, so
the app starts fast and still runs where torch or the robustness module is missing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from analysis.errors import RmtuiError
from analysis.regime_names import RegimeGrid, regime_grid
from analysis.store import Study, open_study
from analysis.regime_names import REGIMES
from analysis.store import entries, triage
from analysis.store import metrics as store_metrics
from analysis.store.entries import Entry
from analysis.store.filters import DEFAULT_SORT, EntryFilter
from analysis.store.triage import DEFAULT_TAGS

__all__ = ["StudyService", "EntryFilter", "Entry", "DEFAULT_SORT", "DEFAULT_TAGS", "REGIMES", "RewriteBackend"]


class RewriteBackend:
    """Rewrite and rescore one pair: the robustness module's API, models loaded once, lazily."""

    def __init__(self, service: "StudyService", device: str = "auto") -> None:
        self.service = service
        self.device = device
        self._models = None
        self._lock = threading.Lock()

    @staticmethod
    def warm_up() -> None:
        """Import the robustness module (scoring, statsmodels: over a second); call it in a worker."""
        import analysis.rewrite_experiment  # noqa: F401

    @staticmethod
    def perturbations() -> list[str]:
        from analysis.rewrite import RULE_PERTURBATIONS

        return list(RULE_PERTURBATIONS)

    @staticmethod
    def llm_configured() -> bool:
        from analysis.llm_client import endpoint_from_env

        return endpoint_from_env()[0] is not None

    def models(self):
        """The study's reward models, loaded on first call (in a worker thread) and kept."""
        with self._lock:
            if self._models is None:
                from analysis.scoring import load_study_models

                from rmtui.cli.base import quiet_libraries

                quiet_libraries()
                self._models = load_study_models(self.service.study, device=self.device)
            return self._models

    def rewrite(self, pair_id: str, side: str, rewriter: str, *, text: str | None = None,
                perturbation: str | None = None, keep: bool = False):
        from analysis.rewrite_experiment import rewrite_one

        kw: dict[str, Any] = {}
        if rewriter == "llm":
            from analysis.llm_client import endpoint_from_env

            base, model = endpoint_from_env()
            if base:
                kw["base_url"] = base
            if model:
                kw["model"] = model
        return rewrite_one(self.service.study, pair_id, side, rewriter, text=text, perturbation=perturbation,
                           models=self.models(), keep=keep, **kw)

    def keep(self, outcome) -> None:
        """Store a rewrite made with ``keep=False`` (and featurize it with the study's offline featurizers)."""
        from analysis.rewrite_experiment import keep_rewrite

        keep_rewrite(self.service.study, outcome)

    def discard(self, rewrite_id: str) -> None:
        from analysis.rewrite_experiment import discard_rewrite

        discard_rewrite(self.service.study, rewrite_id)


class StudyService:
    """One open study and everything the app asks of it."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.study: Study = open_study(self.path, read_only=read_only, create=False)
        self.rewriter = RewriteBackend(self)

    def close(self) -> None:
        self.study.close()

    # -- list ------------------------------------------------------------------------------------
    def count(self, filt: EntryFilter) -> int:
        return entries.count_entries(self.study, filt)

    def window(self, filt: EntryFilter, sort: tuple[str, bool] | None, offset: int, limit: int) -> list[tuple]:
        return entries.fetch_window(self.study, filt, sort, offset, limit)

    def order(self, filt: EntryFilter, sort: tuple[str, bool] | None) -> list[str]:
        return entries.sorted_ids(self.study, filt, sort)

    def rows(self, ids: list[str]) -> list[tuple]:
        return entries.fetch_rows(self.study, ids)

    def position(self, filt: EntryFilter, sort, pair_id: str) -> int | None:
        return entries.position_of(self.study, filt, sort, pair_id)

    def choices(self) -> dict[str, list[str]]:
        return entries.list_values(self.study)

    def has_votes(self) -> bool:
        return entries.has_votes(self.study)

    def frequency(self, filt: EntryFilter, column: str) -> list[tuple[str, int]]:
        return entries.frequency(self.study, filt, column)

    @staticmethod
    def drill_down(filt: EntryFilter, column: str, value: str) -> EntryFilter | None:
        return entries.drill_down(filt, column, value)

    @staticmethod
    def frequency_columns() -> list[str]:
        return list(entries.FREQUENCY_COLUMNS)

    # -- entry -----------------------------------------------------------------------------------
    def entry(self, pair_id: str) -> Entry:
        return entries.get_entry(self.study, pair_id)

    def models(self):
        return entries.models(self.study)

    # -- triage ----------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.read_only:
            raise RmtuiError(f"{self.path}: opened read-only; triage cannot be saved", "Read-only study")

    triage_version = 0  # bumped by every tag, selection or undo: lists whose filter reads them reload

    def toggle_tag(self, pair_id: str, tag: str) -> bool:
        self._writable()
        self.triage_version += 1
        return triage.toggle_tag(self.study, pair_id, tag)

    def set_note(self, pair_id: str, note: str | None) -> None:
        self._writable()
        triage.set_note(self.study, pair_id, note)

    def note(self, pair_id: str) -> str | None:
        return triage.get_note(self.study, pair_id)

    def select(self, pair_ids: Sequence[str] | None = None, *, filt: EntryFilter | None = None,
               mode: str = "select") -> int:
        self._writable()
        self.triage_version += 1
        return triage.select(self.study, pair_ids, filt=filt, mode=mode)

    def selection_count(self) -> int:
        return triage.selection_count(self.study)

    def undo(self) -> str | None:
        self._writable()
        self.triage_version += 1
        return triage.undo_last(self.study)

    def tags(self) -> list[str]:
        return triage.all_tags(self.study)

    def tag_counts(self) -> dict[str, int]:
        return triage.tag_counts(self.study)

    # -- fit tables ------------------------------------------------------------------------------
    def fit(self) -> dict | None:
        return store_metrics.latest_imprint_fit(self.study)

    def imprint(self):
        return store_metrics.imprint_table(self.study)

    def regimes(self, by: str | None = None) -> RegimeGrid:
        """The regime table overall or by ``gamma`` / ``subset``: counts, decided, misaligned per group."""
        return regime_grid(store_metrics.regime_table(self.study, by).itertuples(index=False))

    def agreement(self) -> dict:
        return store_metrics.agreement(self.study)

    def misalignment(self, by: str | None = None) -> dict:
        return store_metrics.misalignment_table(self.study, by)

    # -- export ----------------------------------------------------------------------------------
    def export(self, scope: str, fmt: str | None, path: str | Path, *, filt: EntryFilter | None = None,
               sort=None, tag: str | None = None, overwrite: bool = False):
        from analysis.export import export_pairs

        if scope == "selected":
            target: Any = EntryFilter(regime=None, selected=True)
        elif scope == "tagged":
            target = EntryFilter(regime=None, tag=tag)
        elif scope == "filtered":
            target = filt or EntryFilter()
        else:
            raise RmtuiError(f"export scope {scope!r}: selected | tagged | filtered", "Export")
        return export_pairs(self.study, target, fmt, path, overwrite=overwrite, sort=sort)
