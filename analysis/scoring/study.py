"""Scoring a study: the loop that writes rewards chunk by chunk, reloading a study's models, rescoring."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from analysis.datasets.readers import join_transcript
from analysis.errors import ModelError, RmtuiError
from analysis.scoring.loading import load_reward_model
from analysis.scoring.models import RewardModel, _dedupe
from analysis.scoring.settings import ROLES, Progress, ScoreRunResult, ScoreSettings

def check_invariance(model: RewardModel, texts: pd.DataFrame) -> float:
    """Max |reward batched - reward one text per forward| over ``texts`` (fp32 CPU: < 1e-4)."""
    texts = _dedupe(texts)
    batched = model.score_frame(texts).set_index("text_id")["reward"].reindex(texts["text_id"]).to_numpy()
    single = model.score_one_by_one(texts)
    return float(np.max(np.abs(batched - single))) if len(texts) else 0.0


def score_study(study, spec, role: str, *, name: str | None = None,
                settings: ScoreSettings | None = None, limit: int | None = None,
                progress: Progress | None = None, check_invariance_n: int = 0,
                on_commit: Callable[[int, int], None] | None = None, engine: str | None = None,
                engine_options: dict | None = None) -> ScoreRunResult:
    """Score every text of the study's pairs not yet scored by this model run.

    ``spec``: a model spec (hub id, folder, ``embedded:pre``, ``http://HOST:PORT/v1#MODEL``), a loaded
    :class:`RewardModel` or a :class:`~analysis.scoring.backends.ScoringBackend`; ``engine`` (local |
    ray | vllm-server) and ``engine_options`` choose and configure the backend for a spec.

    This process is the only writer of the study, whatever the engine: every result frame the
    backend yields is committed in one transaction, anti-joined on (model_id, text_id), so a rerun
    after a crash or kill skips what was committed and a repeated or retried frame adds nothing.
    ``role`` 'pre' or 'post' moves a previous model of the same role to 'other' (a study has one
    pre-D and one post-D RM). ``on_commit(n_committed, n_pending)`` is called after every committed
    frame; ``progress(n_done, n_pending)`` as the backend reports it.
    """
    from analysis.store import scores as store
    from analysis.scoring.backends import check_result_frame
    from analysis.scoring.registry import make_backend

    if role not in ROLES:
        raise RmtuiError(f"--role {role!r}: expected one of {', '.join(ROLES)}", "Bad option")
    backend = make_backend(spec, settings, name=name, engine=engine, **(engine_options or {}))
    try:
        return _score_with(study, store, backend, role, name=name, limit=limit, progress=progress,
                           check_invariance_n=check_invariance_n, on_commit=on_commit,
                           check_result_frame=check_result_frame)
    finally:
        if backend is not spec:
            backend.close()


def _score_with(study, store, backend, role, *, name, limit, progress, check_invariance_n, on_commit,
                check_result_frame) -> ScoreRunResult:
    if name:
        backend.name = name
    backend.role = role
    record = backend.record()
    demoted = store.register_model(study, record, role)
    n_texts = store.n_texts(study)
    res = ScoreRunResult(model_id=backend.model_id, name=backend.name, role=role, run_id=uuid.uuid4().hex[:12],
                         n_texts=n_texts, device=backend.device, dtype=backend.dtype, format=backend.format,
                         max_length=backend.max_length, demoted=demoted)
    if check_invariance_n:
        sample = store.random_study_texts(study, check_invariance_n)
        res.invariance_max_abs_diff = backend.check_invariance(sample)
    pending = store.pending_texts(study, backend.model_id)
    res.n_skipped = n_texts - len(pending)
    if limit is not None:
        pending = pending.head(max(int(limit), 0))
    run_settings = {**record["settings"], "limit": limit,
                    "invariance_max_abs_diff": res.invariance_max_abs_diff}
    store.start_run(study, res.run_id, backend.model_id, backend.device, run_settings, name=backend.name,
                    max_length=backend.max_length)
    remaining = set(pending["text_id"])  # a frame's rows outside the pending set add nothing
    t0 = time.perf_counter()
    status, reason = "failed", "stopped by an unexpected error"
    try:
        rest = pending
        if getattr(study, "precomputed", None) is not None:
            rest = _take_shipped(study, store, backend, pending, res, run_settings, remaining, progress,
                                 check_result_frame)
        offset = len(pending) - len(rest)
        step = progress if not offset or progress is None else (lambda d, t: progress(d + offset, t + offset))
        for part in backend.iter_results(rest, step):
            _check_finite(part, backend, pending)
            part = check_result_frame(part, backend.engine)
            part = part[part["text_id"].isin(remaining)]
            if not len(part):
                continue
            added = store.add_scores(study, backend.model_id, part)
            remaining.difference_update(part["text_id"])
            res.n_scored += added
            res.n_truncated += int(part["truncated"].astype(bool).sum())
            if on_commit:
                on_commit(res.n_scored, len(pending))
        if remaining:  # the engine returned fewer results than texts: not done
            first = sorted(remaining)[0]
            reason = (f"the {backend.engine} engine returned no reward for {len(remaining):,} of {len(pending):,} "
                      f"texts (first: text {first}); rerun rmtui score to score them")
            raise ModelError(f"model {backend.name}: {reason}", "Scoring incomplete")
        status, reason = "done", None
    except (KeyboardInterrupt, SystemExit):
        status, reason = "interrupted", "interrupted by the user (Ctrl-C or a signal)"
        raise
    except RmtuiError as e:
        reason = e.message
        raise
    except Exception as e:  # noqa: BLE001 - recorded, then raised for the caller's last guard
        reason = f"{type(e).__name__}: {e}"
        raise
    finally:
        res.seconds = time.perf_counter() - t0
        res.texts_per_s = res.n_scored / res.seconds if res.seconds > 0 else 0.0
        stats = backend.stats()
        res.token_budget = int(stats.get("token_budget") or 0)
        res.n_oom = int(stats.get("n_oom") or 0)
        store.finish_run(study, res.run_id, res.n_scored, res.n_skipped, res.n_truncated, res.texts_per_s,
                         {**run_settings, "final_token_budget": res.token_budget, "n_oom": res.n_oom,
                          **({"n_retries": int(stats["n_retries"])} if "n_retries" in stats else {})},
                         status=status, reason=reason)
    return res


def _take_shipped(study, store, backend, pending, res, run_settings, remaining, progress, check_result_frame):
    """Store the study's precomputed rewards of ``pending`` that a recomputed sample vouches for
    (:mod:`analysis.scoring.precomputed`); return the texts still to score."""
    from analysis.scoring.precomputed import precomputed_line, take_precomputed

    def compute(sample: pd.DataFrame) -> pd.DataFrame:
        parts = [check_result_frame(p, backend.engine) for p in backend.iter_results(sample, None)]
        return pd.concat(parts, ignore_index=True) if parts else sample.iloc[:0]

    rows, rest, record = take_precomputed(study, backend.model_id, backend.name, pending, compute)
    if record:
        run_settings["precomputed"] = record
        res.precomputed = precomputed_line(record)
    if len(rows):
        _check_finite(rows, backend, pending)
        rows = check_result_frame(rows, backend.engine)
        added = store.add_scores(study, backend.model_id, rows)
        remaining.difference_update(rows["text_id"])
        res.n_scored += added
        res.n_precomputed = int(record.get("n_taken_here", 0)) if record else 0
        res.n_truncated += int(rows["truncated"].astype(bool).sum())
        if progress:
            progress(len(rows), len(pending))
    return rest


def _check_finite(part: pd.DataFrame, backend, pending: pd.DataFrame) -> None:
    """A NaN or infinite reward fails the run: the message names the model, how many texts of this
    frame got one and the first of them (its id and the start of its response, made visible)."""
    if "reward" not in part.columns or not len(part):
        return
    rewards = pd.to_numeric(part["reward"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rewards)
    if not bad.any():
        return
    from analysis.textsafe import visible_line

    first = str(part["text_id"].to_numpy()[bad][0])
    row = pending[pending["text_id"] == first]
    excerpt = ""
    if len(row):
        resp = " ".join(str(row["response"].iloc[0] or "").split())
        excerpt = f": {visible_line(resp[:60])!r}" + ("..." if len(resp) > 60 else "")
    raise ModelError(f"model {backend.name} ({backend.engine}): {int(bad.sum()):,} of {len(part):,} texts got a "
                     f"non-finite reward (NaN or infinite), first text {first}{excerpt}; nothing of this chunk "
                     "was stored. Check the model (dtype, max length) and rerun rmtui score", "Non-finite reward")


def study_models(study) -> pd.DataFrame:
    """The study's ``models`` table (model_id, name, role, path_or_hub_id, revision, format, ...)."""
    from analysis.store import scores as store

    return store.models_frame(study)


def load_study_models(study, device: str = "auto", *, roles: Iterable[str] | None = None,
                      trust_remote_code: bool | None = None) -> list[RewardModel]:
    """Reload every RM of the study (pre, post, then others) with its recorded settings.

    The format, max length and dtype are those recorded, so rewards land under the same model_id.
    Raises :class:`ModelError` when a model folder changed since it was scored.

    Trust is never persisted as consent: ``models.trust_remote_code`` only records that a model ran
    its repository's code when it was scored. Loading it again needs consent given to *this* command:
    ``trust_remote_code=True`` (its ``--trust-remote-code``), or, when None, ``RMTUI_TRUST_REMOTE_CODE=1``;
    without it :class:`ModelError` names the model and the flag and nothing of the folder runs.
    """
    if trust_remote_code is None:
        trust_remote_code = os.environ.get("RMTUI_TRUST_REMOTE_CODE", "").strip().lower() in ("1", "true", "yes")
    models = study_models(study)
    if roles is not None:
        models = models[models["role"].isin(list(roles))]
    out = []
    for row in models.itertuples(index=False):
        rec = json.loads(row.settings or "{}")
        needs_code = not pd.isna(row.trust_remote_code) and bool(row.trust_remote_code)
        if needs_code and not trust_remote_code:
            raise ModelError(
                f"{row.name} ({row.path_or_hub_id}): this model runs its own code (it was scored with "
                "--trust-remote-code); rmtui does not reuse that consent: pass --trust-remote-code to this "
                "command, or set RMTUI_TRUST_REMOTE_CODE=1, only if you trust it", "Model needs remote code")
        s = ScoreSettings(
            device=device, dtype=row.dtype or "auto", format=row.format, max_length=row.max_length,
            token_budget=int(rec.get("token_budget") or row.token_budget or 0) or None,
            trust_remote_code=needs_code,
            allow_untrained_head=rec.get("head") == "untrained",
        )
        spec = row.path_or_hub_id
        if str(spec).startswith(("http://", "https://")):  # a served RM: the same server, same model id
            from analysis.scoring.served import served_backend_for

            served = served_backend_for(row, ScoreSettings(format=row.format, max_length=row.max_length))
            served.role = row.role
            out.append(served)
            continue
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
    from analysis.store import scores as store

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
            from analysis.scoring.precomputed import take_precomputed

            new, todo, _ = take_precomputed(study, rm.model_id, rm.name, todo, rm.score_frame)
            if len(todo):
                new = pd.concat([new, rm.score_frame(todo)], ignore_index=True) if len(new) else rm.score_frame(todo)
            store.add_scores(study, rm.model_id, new)
            cached = pd.concat([cached[["text_id", "reward"]], new[["text_id", "reward"]]], ignore_index=True)
        f = texts[["text_id"]].merge(cached[["text_id", "reward"]], on="text_id", how="left")
        f.insert(0, "role", rm.role)
        f.insert(0, "model_id", rm.model_id)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["model_id", "role", "text_id", "reward"])
    return pd.concat(frames, ignore_index=True)
