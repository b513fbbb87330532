"""Scoring a study: the loop that writes rewards chunk by chunk, reloading a study's models, rescoring."""

from __future__ import annotations

import json
import time
import uuid
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ..data import join_transcript
from ..errors import ModelError, RmtuiError
from .loading import load_reward_model
from .models import RewardModel, _dedupe
from .settings import ROLES, Progress, ScoreRunResult, ScoreSettings

def check_invariance(model: RewardModel, texts: pd.DataFrame) -> float:
    """Max |reward batched - reward one text per forward| over ``texts`` (fp32 CPU: < 1e-4)."""
    texts = _dedupe(texts)
    batched = model.score_frame(texts).set_index("text_id")["reward"].reindex(texts["text_id"]).to_numpy()
    single = model.score_one_by_one(texts)
    return float(np.max(np.abs(batched - single))) if len(texts) else 0.0


def score_study(study, spec: str | RewardModel, role: str, *, name: str | None = None,
                settings: ScoreSettings | None = None, limit: int | None = None,
                progress: Progress | None = None, check_invariance_n: int = 0,
                on_commit: Callable[[int, int], None] | None = None) -> ScoreRunResult:
    """Score every text of the study's pairs not yet scored by this model run.

    Chunks of ``settings.chunk_size`` texts are committed one transaction each; a rerun after a
    crash or kill skips what was committed. ``role`` 'pre' or 'post' moves a previous model of the
    same role to 'other' (a study has one pre-D and one post-D RM). ``on_commit(n_committed,
    n_pending)`` is called after every committed chunk; ``progress(n_done, n_pending)`` per batch.
    """
    from ..store import scores as store

    if role not in ROLES:
        raise RmtuiError(f"--role {role!r}: expected one of {', '.join(ROLES)}", "Bad option")
    rm = spec if isinstance(spec, RewardModel) else load_reward_model(spec, settings, name=name)
    if name:
        rm.name = name
    rm.role = role
    demoted = store.register_model(study, rm.record(), role)
    n_texts = store.n_texts(study)
    res = ScoreRunResult(model_id=rm.model_id, name=rm.name, role=role, run_id=uuid.uuid4().hex[:12],
                         n_texts=n_texts, device=rm.device, dtype=rm.dtype, format=rm.format,
                         max_length=rm.max_length, demoted=demoted)
    if check_invariance_n:
        sample = store.sample_texts(study, check_invariance_n)
        res.invariance_max_abs_diff = check_invariance(rm, sample)
    pending = store.pending_texts(study, rm.model_id)
    res.n_skipped = n_texts - len(pending)
    if limit is not None:
        pending = pending.head(max(int(limit), 0))
    run_settings = {**rm.record()["settings"], "limit": limit,
                    "invariance_max_abs_diff": res.invariance_max_abs_diff}
    store.start_run(study, res.run_id, rm.model_id, rm.device, run_settings)
    t0 = time.perf_counter()
    try:
        for part in rm.iter_score(pending, progress):
            store.add_scores(study, rm.model_id, part)
            res.n_scored += len(part)
            res.n_truncated += int(part["truncated"].sum())
            if on_commit:
                on_commit(res.n_scored, len(pending))
    finally:
        res.seconds = time.perf_counter() - t0
        res.texts_per_s = res.n_scored / res.seconds if res.seconds > 0 else 0.0
        res.token_budget = rm.runner.budget
        res.n_oom = rm.runner.n_oom
        store.finish_run(study, res.run_id, res.n_scored, res.n_skipped, res.n_truncated, res.texts_per_s,
                         {**run_settings, "final_token_budget": res.token_budget, "n_oom": res.n_oom})
    return res


def study_models(study) -> pd.DataFrame:
    """The study's ``models`` table (model_id, name, role, path_or_hub_id, revision, format, ...)."""
    from ..store import scores as store

    return store.models_frame(study)


def load_study_models(study, device: str = "auto", *, roles: Iterable[str] | None = None) -> list[RewardModel]:
    """Reload every RM of the study (pre, post, then others) with its recorded settings.

    The format, max length and dtype are those recorded, so rewards land under the same model_id.
    Raises :class:`ModelError` when a model folder changed since it was scored.
    """
    models = study_models(study)
    if roles is not None:
        models = models[models["role"].isin(list(roles))]
    out = []
    for row in models.itertuples(index=False):
        rec = json.loads(row.settings or "{}")
        s = ScoreSettings(
            device=device, dtype=row.dtype or "auto", format=row.format, max_length=row.max_length,
            token_budget=int(rec.get("token_budget") or row.token_budget or 0) or None,
            trust_remote_code=bool(row.trust_remote_code),
            allow_untrained_head=rec.get("head") == "untrained",
        )
        spec = row.path_or_hub_id
        if row.revision and not str(row.revision).startswith("folder:") and row.revision != "unknown":
            spec = f"{spec}@{row.revision}"
        rm = load_reward_model(spec, s, name=row.name)
        rm.role = row.role
        if rm.model_id != row.model_id:
            raise ModelError(
                f"{row.path_or_hub_id}: the model changed since it was scored as {row.name!r} "
                f"(recorded revision {row.revision}, now {rm.revision}); score it again with rmtui score",
                "Model changed")
        out.append(rm)
    return out


def rescore(study, texts: pd.DataFrame, models: list[RewardModel] | None = None) -> pd.DataFrame:
    """Score texts with the study's models, skipping text_ids already in ``scores``, store the new
    rewards and return DataFrame[model_id, role, text_id, reward] for every given text."""
    from ..store import scores as store

    texts = _dedupe(texts)
    if "text" not in texts.columns:
        texts = texts.assign(text=[join_transcript(c, r) for c, r in zip(texts["context"], texts["response"])])
    if models is None:
        models = load_study_models(study)
    frames = []
    for rm in models:
        cached = store.get_scores(study, rm.model_id, texts["text_id"].tolist())
        todo = texts[~texts["text_id"].isin(set(cached["text_id"]))]
        if len(todo):
            new = rm.score_frame(todo)
            store.add_scores(study, rm.model_id, new)
            cached = pd.concat([cached[["text_id", "reward"]], new[["text_id", "reward"]]], ignore_index=True)
        f = texts[["text_id"]].merge(cached[["text_id", "reward"]], on="text_id", how="left")
        f.insert(0, "role", rm.role)
        f.insert(0, "model_id", rm.model_id)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["model_id", "role", "text_id", "reward"])
    return pd.concat(frames, ignore_index=True)
