"""Reads for reward-model training (``rmtui train``) and the embedded models' held-out marks."""

from __future__ import annotations

import pandas as pd

from analysis.store.core import Study


def training_pairs(study: Study) -> pd.DataFrame:
    """Every pair of the study with both sides split into context and response.

    Columns: pair_id, subset, chosen_context, chosen_response, rejected_context, rejected_response,
    chosen_text_id, rejected_text_id, identical, heldout (NULL when unknown).
    """
    return study.df(
        "SELECT pair_id, subset, context AS chosen_context, chosen_response, "
        "coalesce(rejected_context, context) AS rejected_context, rejected_response, "
        "chosen_text_id, rejected_text_id, identical, heldout FROM pairs ORDER BY subset, source_row, pair_id"
    )


def pair_text_ids(study: Study) -> pd.DataFrame:
    """pair_id, chosen_text_id, rejected_text_id, heldout of every pair (cheap: no texts)."""
    return study.df("SELECT pair_id, chosen_text_id, rejected_text_id, heldout FROM pairs")
