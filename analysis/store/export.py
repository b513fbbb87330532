"""What ``rmtui export`` and the report read about a set of pairs, and the study's metadata."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from analysis.store.core import Study
from analysis.store.filters import ids_frame
from analysis.store.metrics import latest_imprint_fit
from analysis.store.scores import models_frame


def export_frames(study: Study, ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Everything the export writes about the given pairs, as frames keyed by pair_id."""
    cur = study.cursor()
    try:
        cur.register("_exp_ids", ids_frame(ids))
        out = {
            "pairs": cur.execute(
                "SELECT p.pair_id, p.dataset, p.subset, p.split, p.heldout, p.context, p.chosen_response, "
                "p.rejected_response, p.chosen_text_id, p.rejected_text_id, m.reward_chosen_pre, "
                "m.reward_rejected_pre, m.reward_chosen_post, m.reward_rejected_post, m.margin_pre, "
                "m.margin_post, m.regime, m.gamma, m.theta, m.confusing, m.fit_id, "
                "p.preference, p.human_tie, p.label_raw, p.votes_a, p.votes_b, p.votes_tie, p.annotator_agreement, "
                "p.human_margin, p.dimension, p.source_item, p.source, p.source_row, p.a_is_chosen, p.n_records, "
                "p.merged_rows "
                "FROM _exp_ids i JOIN pairs p USING (pair_id) LEFT JOIN pair_metrics m USING (pair_id)").df(),
            "rewards": cur.execute(
                "SELECT p.pair_id, t.side, mo.name AS model, mo.role, s.reward FROM _exp_ids i "
                "JOIN texts t USING (pair_id) JOIN pairs p USING (pair_id) "
                "JOIN scores s ON s.text_id = t.text_id JOIN models mo ON mo.model_id = s.model_id "
                "ORDER BY 1, 2, 4, 3").df(),
            "features": cur.execute(
                "SELECT t.pair_id, t.side, f.featurizer || '.' || f.name AS feature, f.value FROM _exp_ids i "
                "JOIN texts t USING (pair_id) JOIN features f ON f.text_id = t.text_id ORDER BY 1, 2, 3").df(),
            "triage": cur.execute(
                "SELECT t.pair_id, t.tag, t.note FROM _exp_ids i JOIN triage t USING (pair_id) "
                "ORDER BY 1, 2").df(),
            "rewrites": cur.execute(
                "SELECT r.pair_id, r.rewrite_id, r.side, r.rewriter, r.params, r.new_response, r.similarity, "
                "r.kept FROM _exp_ids i JOIN rewrites r USING (pair_id) ORDER BY 1, 2").df(),
            "rewrite_rewards": cur.execute(
                "SELECT r.rewrite_id, mo.name AS model, mo.role, s.reward FROM _exp_ids i "
                "JOIN rewrites r USING (pair_id) JOIN scores s ON s.text_id = r.new_text_id "
                "JOIN models mo ON mo.model_id = s.model_id ORDER BY 1, 3, 2").df(),
        }
        cur.unregister("_exp_ids")
    finally:
        cur.close()
    return out


def study_metadata(study: Study) -> dict:
    """Models, featurizers, latest fit (SE type, n) and study keys, JSON-able."""
    fit = latest_imprint_fit(study)
    return {
        "study": str(study.path),
        "meta": {k: v for k, v in study.con.cursor().execute("SELECT key, value FROM study WHERE key NOT LIKE 'job.%' ORDER BY 1").fetchall()},
        # by role name, then name, as exports always listed them
        "models": models_frame(study).sort_values(["role", "name"], kind="stable")[
            ["model_id", "name", "role", "path_or_hub_id", "revision", "format", "dtype"]].to_dict("records"),
        "featurizers": study.df("SELECT featurizer, version, config FROM featurizers ORDER BY 1").to_dict("records"),
        "feature_defs": study.df("SELECT featurizer, name, kind, role, proxy FROM feature_defs ORDER BY 1, 2")
        .to_dict("records"),
        "fit": None if fit is None else {k: (str(v) if k == "created_at" else v) for k, v in fit.items()
                                         if k in ("fit_id", "kind", "created_at", "se_type", "n", "pre_model_id",
                                                  "post_model_id")},
    }
