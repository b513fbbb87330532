"""The app's reads and writes, under the name they had before the store was cut along its jobs.

Kept so that code written against ``analysis.store.browse`` keeps working; new code imports from the
module that owns each function: :mod:`.filters` (EntryFilter, the WHERE clause), :mod:`.entries`
(the list, one entry, frequencies), :mod:`.triage` (tags, notes, selection, undo), :mod:`.metrics`
(the fit's tables as the app shows them), :mod:`.export` (what an export reads), :mod:`.core`
(bulk_insert).
"""

from analysis.metrics.regime_names import GAMMAS, REGIMES
from analysis.store.core import bulk_insert
from analysis.store.entries import (FREQUENCY_COLUMNS, LIST_COLUMNS, Entry, count_entries, drill_down, fetch_rows, fetch_window,
                      frequency, get_entry, has_votes, list_values, models, non_null_counts, position_of,
                      prompt_heads, sorted_ids)
from analysis.store.export import export_frames, study_metadata
from analysis.store.filters import DEFAULT_SORT, GAMMA_NONE, SORT_COLUMNS, EntryFilter
from analysis.store.metrics import agreement, imprint_table, misalignment_table, regime_table
from analysis.store.metrics import latest_imprint_fit as latest_fit
from analysis.store.triage import (DEFAULT_TAGS, all_tags, get_note, select, selected_ids, selection_count, set_note, set_tags,
                     tag_counts, toggle_tag, undo_last)

pair_ids = sorted_ids  # the same ids in the same order

__all__ = [
    "GAMMAS", "REGIMES", "bulk_insert", "FREQUENCY_COLUMNS", "LIST_COLUMNS", "Entry", "count_entries", "drill_down",
    "fetch_rows", "fetch_window", "frequency", "get_entry", "has_votes", "non_null_counts", "prompt_heads", "list_values", "models", "position_of", "sorted_ids",
    "pair_ids", "export_frames", "study_metadata", "DEFAULT_SORT", "GAMMA_NONE", "SORT_COLUMNS", "EntryFilter",
    "agreement", "imprint_table", "misalignment_table", "regime_table", "latest_fit", "DEFAULT_TAGS", "all_tags", "get_note", "select",
    "selected_ids", "selection_count", "set_note", "set_tags", "tag_counts", "toggle_tag", "undo_last",
]
