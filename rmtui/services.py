"""The app's headless core: every call the UI makes into ``analysis`` goes through here.

The UI (screens, widgets) never imports ``analysis`` modules directly except for types; it calls a
:class:`StudyService`. Heavy parts (reward models, rewriting) are imported lazily, on first use, so
the app starts fast and still runs where torch or the robustness module is missing.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from analysis.errors import RmtuiError
from analysis.store import Study, open_study
from analysis.store import browse
from analysis.store.browse import DEFAULT_SORT, DEFAULT_TAGS, REGIMES, EntryFilter, Entry

__all__ = ["StudyService", "EntryFilter", "Entry", "DEFAULT_SORT", "DEFAULT_TAGS", "REGIMES", "RewriteBackend"]


class RewriteBackend:
    """Rewrite and rescore one pair: the robustness module's API, models loaded once, lazily."""

    def __init__(self, service: "StudyService", device: str = "auto") -> None:
        self.service = service
        self.device = device
        self._models = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import analysis.robustness  # noqa: F401
        except ImportError as e:
            return False, f"rewriting needs analysis.robustness ({e})"
        return True, ""

    @staticmethod
    def perturbations() -> list[str]:
        try:
            from analysis.rewrite import RULE_PERTURBATIONS
        except ImportError:
            return []
        return list(RULE_PERTURBATIONS)

    @staticmethod
    def llm_configured() -> bool:
        return bool(os.environ.get("RMTUI_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL"))

    def models(self):
        """The study's reward models, loaded on first call (in a worker thread) and kept."""
        with self._lock:
            if self._models is None:
                try:
                    from analysis.scoring import load_study_models
                except ImportError as e:
                    raise RmtuiError(f"scoring is not available: {e}", "Rewrite") from e
                from rmtui.cli.base import quiet_libraries

                quiet_libraries()
                self._models = load_study_models(self.service.study, device=self.device)
            return self._models

    def rewrite(self, pair_id: str, side: str, rewriter: str, *, text: str | None = None,
                perturbation: str | None = None, keep: bool = False):
        ok, why = self.available()
        if not ok:
            raise RmtuiError(why, "Rewrite")
        from analysis.robustness import rewrite_one

        kw: dict[str, Any] = {}
        if rewriter == "llm":
            base = os.environ.get("RMTUI_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
            model = os.environ.get("RMTUI_LLM_MODEL")
            if base:
                kw["base_url"] = base
            if model:
                kw["model"] = model
        return rewrite_one(self.service.study, pair_id, side, rewriter, text=text, perturbation=perturbation,
                           models=self.models(), keep=keep, **kw)

    def keep(self, outcome) -> None:
        """Store a rewrite made with ``keep=False`` (and featurize it with the study's offline featurizers)."""
        from analysis.robustness import keep_rewrite

        keep_rewrite(self.service.study, outcome)

    def discard(self, rewrite_id: str) -> None:
        from analysis.robustness import discard_rewrite

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
        return browse.count_entries(self.study, filt)

    def non_null(self, filt: EntryFilter) -> dict[str, int]:
        return browse.non_null_counts(self.study, filt)

    def window(self, filt: EntryFilter, sort: tuple[str, bool] | None, offset: int, limit: int) -> list[tuple]:
        return browse.fetch_window(self.study, filt, sort, offset, limit)

    def order(self, filt: EntryFilter, sort: tuple[str, bool] | None) -> list[str]:
        return browse.sorted_ids(self.study, filt, sort)

    def rows(self, ids: list[str]) -> list[tuple]:
        return browse.fetch_rows(self.study, ids)

    def prompt_heads(self, ids: list[str]) -> dict[str, tuple[int, str]]:
        return browse.prompt_heads(self.study, ids)

    def position(self, filt: EntryFilter, sort, pair_id: str) -> int | None:
        return browse.position_of(self.study, filt, sort, pair_id)

    def choices(self) -> dict[str, list[str]]:
        return browse.list_values(self.study)

    def frequency(self, filt: EntryFilter, column: str) -> list[tuple[str, int]]:
        return browse.frequency(self.study, filt, column)

    @staticmethod
    def drill_down(filt: EntryFilter, column: str, value: str) -> EntryFilter | None:
        return browse.drill_down(filt, column, value)

    @staticmethod
    def frequency_columns() -> list[str]:
        return list(browse.FREQUENCY_COLUMNS)

    # -- entry -----------------------------------------------------------------------------------
    def entry(self, pair_id: str) -> Entry:
        return browse.get_entry(self.study, pair_id)

    def models(self):
        return browse.models(self.study)

    # -- triage ----------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.read_only:
            raise RmtuiError(f"{self.path}: opened read-only; triage cannot be saved", "Read-only study")

    triage_version = 0  # bumped by every tag, selection or undo: lists whose filter reads them reload

    def toggle_tag(self, pair_id: str, tag: str) -> bool:
        self._writable()
        self.triage_version += 1
        return browse.toggle_tag(self.study, pair_id, tag)

    def set_note(self, pair_id: str, note: str | None) -> None:
        self._writable()
        browse.set_note(self.study, pair_id, note)

    def note(self, pair_id: str) -> str | None:
        return browse.get_note(self.study, pair_id)

    def select(self, pair_ids: Sequence[str] | None = None, *, filt: EntryFilter | None = None,
               mode: str = "select") -> int:
        self._writable()
        self.triage_version += 1
        return browse.select(self.study, pair_ids, filt=filt, mode=mode)

    def selection_count(self) -> int:
        return browse.selection_count(self.study)

    def undo(self) -> str | None:
        self._writable()
        self.triage_version += 1
        return browse.undo_last(self.study)

    def tags(self) -> list[str]:
        return browse.all_tags(self.study)

    def tag_counts(self) -> dict[str, int]:
        return browse.tag_counts(self.study)

    # -- fit tables ------------------------------------------------------------------------------
    def fit(self) -> dict | None:
        return browse.latest_fit(self.study)

    def imprint(self):
        return browse.imprint_table(self.study)

    def regimes(self, by: str | None = None):
        return browse.regime_table(self.study, by)

    def agreement(self) -> dict:
        return browse.agreement(self.study)

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
