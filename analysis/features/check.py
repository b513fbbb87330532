"""Agreement between two labelers (``rmtui featurize --check-with MODEL``): Cohen's kappa per feature.

Sits above the featurizer runner (``analysis.features``) and the LLM labeler: it relabels a sample with a
second model and compares; nothing below imports it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.errors import RmtuiError
from analysis.features.llm_labeler import LLMLabeler


# -- labeler agreement ------------------------------------------------------------------------------

def cohens_kappa(a, b) -> float:
    """Cohen's kappa of two raters' labels over the same items (exact; categories = union of both).

    kappa = (p_o - p_e) / (1 - p_e), p_o the share of equal labels, p_e = sum_k p_a(k) p_b(k).
    NaN when there are no items or p_e == 1 (both raters give one and the same label throughout)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if len(a) != len(b):
        raise ValueError("raters must label the same items")
    if len(a) == 0:
        return float("nan")
    cats = np.union1d(a, b)
    po = float(np.mean(a == b))
    pe = float(sum(np.mean(a == k) * np.mean(b == k) for k in cats))
    if pe >= 1.0:
        return float("nan")
    return (po - pe) / (1 - pe)


def labeler_agreement(study, featurizer_a: str, featurizer_b: str, names=None) -> pd.DataFrame:
    """Per feature: n texts labelled by both, raw agreement and Cohen's kappa."""
    from analysis.store.features import features_long

    long = features_long(study, [featurizer_a, featurizer_b])
    if names:
        long = long[long["name"].isin(set(names))]
    wide = long.pivot_table(index=["text_id", "name"], columns="featurizer", values="value").reset_index()
    return _agreement_from_wide(wide, featurizer_a, featurizer_b)


def check_labeler(study, reference: str, *, endpoint: str, model: str, n_pairs: int = 100, seed: int = 0,
                  progress=None, confirm=None, cancel=None, **options):
    """Relabel the texts of a seeded sample of ``n_pairs`` pairs with a second model (featurizer
    ``llm:<model>``, same label config as ``reference``) and return (FeaturizeResult, agreement frame).

    The reference labels must exist for those texts (texts without them are left out of the kappa)."""
    from analysis.store.features import featurizer_config
    from analysis.features import featurize_study, study_texts  # the runner sits above the labelers

    cfg = featurizer_config(study, reference)
    if cfg is None:
        raise RmtuiError(f"no featurizer {reference!r} in this study; label with it first "
                         "(rmtui featurize --labeler llm ...)", "Labeler check")
    fz = LLMLabeler(endpoint, model, study=study, config=cfg.get("label_config"), **options)
    if fz.name == reference:
        raise RmtuiError(f"the check model must differ from the reference {reference!r}", "Labeler check")
    texts = study_texts(study, limit=n_pairs, seed=seed)
    res = featurize_study(study, fz, texts=texts, progress=progress, confirm=confirm, cancel=cancel)
    from analysis.store.features import features_long

    long = features_long(study, [reference, fz.name], text_ids=list(texts["text_id"]))
    wide = long.pivot_table(index=["text_id", "name"], columns="featurizer", values="value").reset_index()
    return res, _agreement_from_wide(wide, reference, fz.name)


def _agreement_from_wide(wide: pd.DataFrame, a_col: str, b_col: str) -> pd.DataFrame:
    rows = []
    if a_col in wide.columns and b_col in wide.columns:
        wide = wide.dropna(subset=[a_col, b_col])
        for name, g in wide.groupby("name", sort=True):
            a, b = g[a_col].to_numpy(), g[b_col].to_numpy()
            rows.append({"name": name, "n": len(g), "agreement": float(np.mean(a == b)),
                         "prevalence_a": float(np.mean(a)), "prevalence_b": float(np.mean(b)),
                         "kappa": cohens_kappa(a, b)})
    return pd.DataFrame(rows, columns=["name", "n", "agreement", "prevalence_a", "prevalence_b", "kappa"])
