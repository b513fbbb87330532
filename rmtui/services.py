"""The app's headless core: every call the UI makes into ``analysis`` goes through here.

The UI (screens, widgets) never imports ``analysis`` modules directly except for types; it calls a
:class:`StudyService`. Heavy parts (reward models, rewriting) are imported lazily, on first use, so
the app starts fast and still runs where torch or the robustness module is missing.

The study is opened shared (:mod:`analysis.store.core`): every call holds the file only while it runs
(plus a 0.3 s linger for bursts), so a scoring job in another process can commit between the app's
reads, and ``rmtui summary``/``export`` run while the app is open. A call that finds the file held by
a job waits for it (retry with back-off, ``$RMTUI_LOCK_TIMEOUT`` s, default 10). A study file without
write permission (chmod 444) opens read-only by itself.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from analysis.errors import RmtuiError, StudyLockedError
from analysis.metrics.regime_names import RegimeGrid, regime_grid
from analysis.store import Study, open_study
from analysis.store.core import change_signature, file_signature, writable
from analysis.metrics.regime_names import REGIMES
from analysis.store import entries, triage
from analysis.store import metrics as store_metrics
from analysis.store.entries import Entry
from analysis.store.filters import DEFAULT_SORT, EntryFilter
from analysis.store.triage import DEFAULT_TAGS

__all__ = ["StudyService", "EntryFilter", "Entry", "DEFAULT_SORT", "DEFAULT_TAGS", "REGIMES", "RewriteBackend"]

APP_LINGER_S = 0.3  # an idle app keeps the file this long after its last call, then lets a job have it


def _held(fn):
    """Run a service call inside one hold of the study: one open (or none, within the linger) per
    call, whatever number of queries it makes, and the file is free again soon after."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kw):
        study = self.study if isinstance(self, StudyService) else self.service.study
        with study.hold():
            return fn(self, *args, **kw)
    return wrapper


class RewriteBackend:
    """Rewrite and rescore one pair: the robustness module's API, models loaded once, lazily."""

    def __init__(self, service: "StudyService", device: str = "auto", *, trust_remote_code: bool = False) -> None:
        self.service = service
        self.device = device
        self.trust_remote_code = trust_remote_code  # given to this app run (--trust-remote-code); never read from the study
        self._models = None
        self._lock = threading.Lock()

    @staticmethod
    def warm_up() -> None:
        """Import the robustness module (scoring, statsmodels: over a second); call it in a worker."""
        import analysis.rewrite.experiment  # noqa: F401

    @staticmethod
    def perturbations() -> list[str]:
        from analysis.rewrite import RULE_PERTURBATIONS

        return list(RULE_PERTURBATIONS)

    @staticmethod
    def llm_configured() -> bool:
        from analysis.llm.client import endpoint_from_env

        return endpoint_from_env()[0] is not None

    def models(self):
        """The study's reward models, loaded on first call (in a worker thread) and kept."""
        with self._lock:
            if self._models is None:
                from analysis.scoring import load_study_models

                from analysis.models.quiet import quiet_transformers as quiet_libraries

                quiet_libraries()
                # reads the models table in one short hold; loading the weights holds no file
                self._models = load_study_models(self.service.study, device=self.device,
                                                 trust_remote_code=self.trust_remote_code or None)
            return self._models

    @_held
    def rewrite(self, pair_id: str, side: str, rewriter: str, *, text: str | None = None,
                perturbation: str | None = None, keep: bool = False):
        from analysis.rewrite.experiment import rewrite_one

        kw: dict[str, Any] = {}
        if rewriter == "llm":
            from analysis.llm.client import endpoint_from_env

            base, model = endpoint_from_env()
            if base:
                kw["base_url"] = base
            if model:
                kw["model"] = model
        return rewrite_one(self.service.study, pair_id, side, rewriter, text=text, perturbation=perturbation,
                           models=self.models(), keep=keep, **kw)

    @_held
    def keep(self, outcome) -> None:
        """Store a rewrite made with ``keep=False`` (and featurize it with the study's offline featurizers)."""
        from analysis.rewrite.experiment import keep_rewrite

        keep_rewrite(self.service.study, outcome)

    @_held
    def discard(self, rewrite_id: str) -> None:
        from analysis.rewrite.experiment import discard_rewrite

        discard_rewrite(self.service.study, rewrite_id)


class StudyService:
    """One open study and everything the app asks of it."""

    def __init__(self, path: str | Path, *, read_only: bool = False, trust_remote_code: bool = False,
                 lock_timeout: float | None = None) -> None:
        self.path = Path(path)
        # a file without write permission opens read-only by itself (root may write any file: the mode
        # bits decide, see analysis.store.core.writable)
        self.read_only_by_file = not read_only and self.path.exists() and not writable(self.path)
        self.read_only = read_only or self.read_only_by_file
        self.study: Study = open_study(self.path, read_only=self.read_only, create=False, shared=True,
                                       lock_timeout=lock_timeout, linger=APP_LINGER_S)
        self.rewriter = RewriteBackend(self, trust_remote_code=trust_remote_code)
        self._seen_file = file_signature(self.path)
        self._seen_data = self._data_signature()

    def close(self) -> None:
        self.study.close()

    # -- sharing with a job ------------------------------------------------------------------------
    def _data_signature(self) -> tuple[int, ...]:
        return change_signature(self.study)

    def changed_elsewhere(self) -> bool:
        """Whether another process (a scoring job, say) committed since the last call: a stat of the
        file first (free, no lock), then, only if it moved, one short read of the row counts."""
        f = file_signature(self.path)
        if f == self._seen_file:
            return False
        try:  # a short wait only: the UI thread asks, and a job holding the file is asked again next time
            data = change_signature(self.study, timeout=0.5)
        except StudyLockedError:
            return False
        self._seen_file = f
        if data == self._seen_data:
            return False
        self._seen_data = data
        return True

    # -- list ------------------------------------------------------------------------------------
    @_held
    def count(self, filt: EntryFilter) -> int:
        return entries.count_entries(self.study, filt)

    @_held
    def non_null(self, filt: EntryFilter) -> dict[str, int]:
        return entries.non_null_counts(self.study, filt)

    @_held
    def empty_columns(self) -> tuple[int, set[str]]:
        """(pairs in the study, sortable list columns no pair has a value in): the list's start-up check."""
        return entries.empty_columns(self.study)

    @_held
    def window(self, filt: EntryFilter, sort: tuple[str, bool] | None, offset: int, limit: int) -> list[tuple]:
        return entries.fetch_window(self.study, filt, sort, offset, limit)

    @_held
    def order(self, filt: EntryFilter, sort: tuple[str, bool] | None):
        """The filter's pair ids in list order, as an Arrow string array (see entries.sorted_id_array)."""
        return entries.sorted_id_array(self.study, filt, sort)

    @_held
    def rows(self, ids: list[str]) -> list[tuple]:
        return entries.fetch_rows(self.study, ids)

    @_held
    def prompt_heads(self, ids: list[str]) -> dict[str, tuple[int, str]]:
        return entries.prompt_heads(self.study, ids)

    @_held
    def position(self, filt: EntryFilter, sort, pair_id: str) -> int | None:
        return entries.position_of(self.study, filt, sort, pair_id)

    @_held
    def choices(self, *fields: str) -> dict[str, list[str]]:
        """The filter's choices per field (``fields``: only these; none: all)."""
        return entries.list_values(self.study, fields or None)

    @_held
    def has_votes(self) -> bool:
        return entries.has_votes(self.study)

    @_held
    def frequency(self, filt: EntryFilter, column: str) -> list[tuple[str, int]]:
        return entries.frequency(self.study, filt, column)

    @staticmethod
    def drill_down(filt: EntryFilter, column: str, value: str) -> EntryFilter | None:
        return entries.drill_down(filt, column, value)

    @staticmethod
    def frequency_columns() -> list[str]:
        return list(entries.FREQUENCY_COLUMNS)

    # -- entry -----------------------------------------------------------------------------------
    @_held
    def entry(self, pair_id: str) -> Entry:
        return entries.get_entry(self.study, pair_id)

    @_held
    def models(self):
        return entries.models(self.study)

    @_held
    def incomplete_runs(self) -> list[str]:
        """Scoring runs that failed or were interrupted and left their model's scores incomplete (one
        line each, as rmtui summary prints them)."""
        from analysis.store.jobs import failed_runs, interrupted

        return failed_runs(self.study) + [m for m in interrupted(self.study) if m.startswith("scoring run")]

    # -- triage ----------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.read_only:
            raise RmtuiError(f"{self.path}: opened read-only; triage cannot be saved", "Read-only study")

    triage_version = 0  # bumped by every tag, selection or undo: lists whose filter reads them reload

    @_held
    def toggle_tag(self, pair_id: str, tag: str) -> bool:
        self._writable()
        self.triage_version += 1
        return triage.toggle_tag(self.study, pair_id, tag)

    @_held
    def set_note(self, pair_id: str, note: str | None) -> None:
        self._writable()
        triage.set_note(self.study, pair_id, note)

    @_held
    def note(self, pair_id: str) -> str | None:
        return triage.get_note(self.study, pair_id)

    @_held
    def select(self, pair_ids: Sequence[str] | None = None, *, filt: EntryFilter | None = None,
               mode: str = "select") -> int:
        self._writable()
        self.triage_version += 1
        return triage.select(self.study, pair_ids, filt=filt, mode=mode)

    @_held
    def selection_count(self) -> int:
        return triage.selection_count(self.study)

    @_held
    def undo(self) -> str | None:
        self._writable()
        self.triage_version += 1
        return triage.undo_last(self.study)

    @_held
    def tags(self) -> list[str]:
        return triage.all_tags(self.study)

    @_held
    def tag_counts(self) -> dict[str, int]:
        return triage.tag_counts(self.study)

    # -- fit tables ------------------------------------------------------------------------------
    @_held
    def fit(self) -> dict | None:
        return store_metrics.latest_imprint_fit(self.study)

    @_held
    def imprint(self):
        return store_metrics.imprint_table(self.study)

    @_held
    def regimes(self, by: str | None = None) -> RegimeGrid:
        """The regime table overall or by ``gamma`` / ``subset``: counts, decided, misaligned per group."""
        return regime_grid(store_metrics.regime_table(self.study, by).itertuples(index=False))

    @_held
    def agreement(self) -> dict:
        return store_metrics.agreement(self.study)

    @_held
    def truncation(self) -> list[dict]:
        """Per RM: texts scored and texts cut at its maximum length (analysis.store.scores.truncation)."""
        from analysis.store.scores import truncation

        return truncation(self.study).to_dict("records")

    def truncation_warnings_short(self) -> list[str]:
        """The status line's truncation warning: one short phrase per RM over 5 %."""
        from analysis.metrics.truncation import truncation_status

        return truncation_status(self.truncation())

    @_held
    def misalignment(self, by: str | None = None) -> dict:
        return store_metrics.misalignment_table(self.study, by)

    # -- export ----------------------------------------------------------------------------------
    @_held
    def export(self, scope: str, fmt: str | None, path: str | Path, *, filt: EntryFilter | None = None,
               sort=None, tag: str | None = None, overwrite: bool = False):
        from analysis.report.export import export_pairs

        if scope == "selected":
            target: Any = EntryFilter(regime=None, selected=True)
        elif scope == "tagged":
            target = EntryFilter(regime=None, tag=tag)
        elif scope == "filtered":
            target = filt or EntryFilter()
        else:
            raise RmtuiError(f"export scope {scope!r}: selected | tagged | filtered", "Export")
        return export_pairs(self.study, target, fmt, path, overwrite=overwrite, sort=sort)
