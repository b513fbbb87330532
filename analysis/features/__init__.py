"""Featurizers: offline heuristics, an LLM labeler (OpenAI-compatible HTTP), Hugging Face text
classifiers and imported label files. Values are stored per text (content hash) and cached: a rerun
computes nothing for texts already featurized by the same featurizer and version.

Stage 4 in the data's flow, below datasets in the imports (a dataset's attributes are stored as features).
May import ``analysis.llm``, ``analysis.store``, ``analysis.metrics`` and the shared top modules only.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.features.base import FeatureDef, FeaturizeResult, Featurizer, run_featurizer
from analysis.features.registry import make_featurizer

__all__ = ["FeatureDef", "FeaturizeResult", "Featurizer", "make_featurizer", "featurize_study",
           "featurize_texts", "feature_matrix", "study_texts"]


def study_texts(study, *, limit: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """Distinct texts of the study's pairs; with ``limit`` only the texts of the first ``limit`` pairs
    (ordered by source and row, or a seeded random sample of pairs when ``seed`` is given)."""
    from analysis.store.pairs import all_texts, first_pair_ids

    if limit is None:
        return all_texts(study)
    return all_texts(study, pair_ids=first_pair_ids(study, limit, seed))


def featurize_study(study, spec: str | Featurizer, *, limit: int | None = None, seed: int | None = None,
                    progress: Callable[[int], None] | None = None, confirm: Callable[[dict], bool] | None = None,
                    cancel=None, replace: bool = False, skip_failed: bool = False, texts: pd.DataFrame | None = None,
                    **options) -> FeaturizeResult:
    """Featurize every text of the study's pairs (or those of ``limit`` pairs) with ``spec``.

    Cached per text_id: texts already holding values of this featurizer are skipped. ``confirm`` is
    called with the cost estimate when the featurizer asks (LLM above the threshold); returning False
    cancels before any request. ``cancel`` (a threading.Event) stops the run; what was done stays.
    """
    fz = spec if isinstance(spec, Featurizer) else make_featurizer(spec, study=study, **options)
    if texts is None:
        texts = study_texts(study, limit=limit, seed=seed)
    res = run_featurizer(study, fz, texts, progress=progress, confirm=confirm, cancel=cancel, replace=replace,
                         skip_failed=skip_failed)
    extra = getattr(fz, "report", None)
    if callable(extra):
        res.extra.update(extra())
    return res


def featurize_texts(study, texts: pd.DataFrame, featurizers: Sequence[str] | None = None) -> pd.DataFrame:
    """Featurize given texts (e.g. rewrites) with the study's recorded featurizers, store, and return
    the long frame ``text_id, featurizer, name, value`` of those texts.

    Default: every recorded featurizer that runs offline (heuristic, hf:). LLM featurizers run only
    when named (they need an endpoint; their recorded config holds endpoint and model, never the key).
    """
    from analysis.store import features as store

    rec = store.featurizers(study)
    names = list(featurizers) if featurizers is not None else list(rec["featurizer"])
    used = []
    for name in names:
        row = rec[rec["featurizer"] == name]
        cfg = {}
        if len(row):
            import json

            cfg = json.loads(row["config"].iloc[0] or "{}")
        if name.startswith("file:"):
            continue  # imported labels cannot be computed for new texts
        if name.startswith("llm") and featurizers is None:
            continue
        try:
            fz = _rebuild(name, cfg, study)
        except RmtuiError:
            if featurizers is not None:
                raise
            continue
        if featurizers is None and not fz.offline:
            continue
        run_featurizer(study, fz, texts[["text_id", "context", "response", "text"]])
        used.append(fz.name)
    return store.features_long(study, used, text_ids=list(texts["text_id"]))


def _rebuild(name: str, cfg: dict, study) -> Featurizer:
    if name == "heuristic":
        return make_featurizer("heuristic")
    if name == "proxy":
        return make_featurizer("proxy", **({"similarity_model": cfg["similarity_model"]}
                                           if cfg.get("similarity_model") not in (None, "all-MiniLM-L6-v2") else {}))
    if name.startswith("hf:"):
        return make_featurizer(name, **{k: v for k, v in cfg.items() if k in ("label_map", "on", "max_length", "batch_size")})
    if name.startswith("llm"):
        opts = {k: v for k, v in cfg.items() if k in ("endpoint", "model", "api_key_env", "label_config", "concurrency")}
        if "label_config" in opts:
            opts["config"] = opts.pop("label_config")
        return make_featurizer("llm", study=study, **opts)
    raise RmtuiError(f"featurizer {name!r} cannot be rebuilt to featurize new texts", "Featurizer")


def feature_matrix(study, featurizers: Sequence[str] | None = None, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Wide frame: one row per text_id, one column per ``"featurizer.name"``."""
    from analysis.store.features import feature_matrix as _fm

    return _fm(study, featurizers, names)
