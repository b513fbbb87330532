"""The rewrite experiment, the robustness fit, and the one-entry rewrite the app uses.

Scoring and featurizing are passed in as callables so that this module does not depend on how the
engine is built:

- ``scorer(texts) -> DataFrame[model_id, role, text_id, reward]``: scores a text frame with every RM
  of the study and stores the scores (cached by text_id). Default: ``analysis.scoring.rescore``.
- ``featurizer(texts) -> Any``: featurizes a text frame with the study's offline featurizers and
  stores the values. Default: ``analysis.features.featurize_texts``.

Both defaults are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from analysis.datasets.readers import join_transcript
from analysis.errors import RmtuiError
from analysis.hashing import digest
from analysis.hashing import text_id as make_text_id
from analysis.metrics import robustness as M
from analysis.rewrite import RewriteError, Rewriter, make_rewriter
from analysis.features.similarity import DEFAULT_THRESHOLD
from analysis.store import rewrites as store
from analysis.store.core import Study, now

Scorer = Callable[[pd.DataFrame], pd.DataFrame]
Featurizer = Callable[[pd.DataFrame], Any]
SIDES = ("chosen", "rejected")
INTERACTIVE = "interactive"
CHUNK = 128
SAMPLING_FRAME = ("pairs not identical whose two sides every RM of the study scored (at the time of the run), "
                  "sorted by pair_id; a seeded permutation (numpy default_rng(seed)), the first n taken")


# -- adapters to the scoring engine and the featurizers -------------------------------------------

def default_scorer(study: Study, models=None) -> Scorer:
    """``analysis.scoring.rescore`` with the study's RMs (loaded once here unless passed in)."""
    from analysis.scoring import load_study_models, rescore

    loaded = models if models is not None else load_study_models(study)
    return lambda texts: rescore(study, texts, loaded)


def default_featurizer(study: Study) -> Featurizer:
    """``analysis.features.featurize_texts`` with the study's offline featurizers."""
    from analysis.features import featurize_texts

    return lambda texts: featurize_texts(study, texts)


# -- helpers --------------------------------------------------------------------------------------

def _item_rng(seed: int, pair_id: str, side: str) -> np.random.Generator:
    """A generator per (seed, pair, side): the same rewrite whatever the order or the chunking."""
    return np.random.default_rng([int(seed), int(digest("rng", pair_id, side, size=8), 16)])


def experiment_id(rewriter: Rewriter, seed: int, sides: Sequence[str]) -> str:
    """Same rewriter, params, seed and sides -> same experiment (n is left out so it can grow)."""
    return "exp-" + digest("experiment", rewriter.name, rewriter.params_json(), str(int(seed)),
                           ",".join(sorted(sides)), size=6)


def rewrite_id(pair_id: str, side: str, rewriter: Rewriter, experiment: str, extra: str = "") -> str:
    return digest("rewrite", pair_id, side, rewriter.name, rewriter.params_json(), experiment, extra)


def sample_pairs(candidates: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` pairs drawn without replacement, reproducibly: a seeded permutation of the candidates
    sorted by pair_id, first ``n`` taken (so a larger ``n`` with the same seed extends the sample)."""
    c = candidates.sort_values("pair_id").reset_index(drop=True)
    perm = np.random.default_rng(int(seed)).permutation(len(c))
    return c.iloc[perm[:max(0, int(n))]].reset_index(drop=True)


def _text_frame(contexts: Sequence[str], responses: Sequence[str]) -> pd.DataFrame:
    rows = [(make_text_id(c, r), c, r, join_transcript(c, r)) for c, r in zip(contexts, responses)]
    return pd.DataFrame(rows, columns=["text_id", "context", "response", "text"]).drop_duplicates("text_id")


def _validate_sides(sides: Sequence[str]) -> tuple[str, ...]:
    if isinstance(sides, str):
        sides = [s.strip() for s in sides.split(",") if s.strip()]
    bad = [s for s in sides if s not in SIDES]
    if bad or not sides:
        raise RmtuiError(f"sides must be chosen and/or rejected, got {list(sides)!r}", "Rewrite")
    return tuple(s for s in SIDES if s in sides)


def _study_models(study: Study) -> pd.DataFrame:
    m = store.models(study)
    if m.empty:
        raise RmtuiError(f"{study.path}: the study has no reward models; score it first (rmtui score)", "Rewrite")
    return m


def post_model_id(models: pd.DataFrame) -> str:
    post = models[models["role"] == "post"]
    return str((post if len(post) else models).iloc[-1]["model_id"])


def pre_model_id(models: pd.DataFrame) -> str | None:
    pre = models[models["role"] == "pre"]
    return str(pre.iloc[0]["model_id"]) if len(pre) else None


# -- the experiment -------------------------------------------------------------------------------

@dataclass
class ExperimentResult:
    experiment: str
    rewriter: str
    params: dict
    n_candidates: int = 0
    n_sampled: int = 0          # pairs
    n_items: int = 0            # pairs x sides
    n_cached: int = 0           # rewrites already in the study (skipped)
    n_done: int = 0
    n_failed: int = 0
    n_unchanged: int = 0
    n_meaning_changed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)   # (pair_id, side, reasons)
    messages: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)        # rewrite, similarity, score, featurize, store


def run_experiment(study: Study, rewriter: Rewriter | str, n: int, seed: int,
                   sides: Sequence[str] = SIDES, perturbation: str | None = None,
                   progress: Callable[[int], None] | None = None, *, scorer: Scorer | None = None,
                   featurizer: Featurizer | None | bool = None, similarity_model: str | None = None,
                   threshold: float = DEFAULT_THRESHOLD, concurrency: int = 4, chunk: int = CHUNK,
                   **rewriter_params) -> ExperimentResult:
    """Rewrite a seeded sample of ``n`` pairs (each side in ``sides``), store, score and featurize.

    Candidates: pairs not identical whose two sides are scored by every RM of the study. Resumable:
    rewrites already stored (same rewrite id) are skipped; a rewrite row is written only after its
    text is scored and featurized, so a killed run leaves nothing half-done. ``featurizer=False``
    skips featurizing. ``progress(k)`` is called with the number of items finished (cached included).
    """
    from analysis.features.similarity import similarity

    t0 = time.perf_counter()
    sides = _validate_sides(sides)
    if isinstance(rewriter, str):
        rewriter = make_rewriter(rewriter, perturbation=perturbation, **rewriter_params)
    if getattr(rewriter, "_study", False) is None:
        rewriter._study = study          # the LLM client logs its calls into llm_calls
    models = _study_models(study)
    exp = experiment_id(rewriter, seed, sides)
    res = ExperimentResult(exp, rewriter.spec, json.loads(rewriter.params_json()))
    cands = store.candidate_pairs(study, list(models["model_id"]))
    res.n_candidates = len(cands)
    if not len(cands):
        raise RmtuiError(f"{study.path}: no pair has both sides scored by every RM "
                         f"({', '.join(models['name'].fillna(models['model_id']))}); score the study first",
                         "Rewrite")
    sample = sample_pairs(cands, n, seed)
    res.n_sampled = len(sample)
    if len(sample) < n:
        res.messages.append(f"asked for {n} pairs, the study has {len(cands)} candidates: took all")
    items = []
    for row in sample.itertuples(index=False):
        for side in sides:
            rid = rewrite_id(row.pair_id, side, rewriter, exp)
            ctx = row.context if side == "chosen" else row.rejected_context
            resp = row.chosen_response if side == "chosen" else row.rejected_response
            tid = row.chosen_text_id if side == "chosen" else row.rejected_text_id
            items.append((rid, row.pair_id, side, ctx, resp, tid))
    res.n_items = len(items)
    store.write_experiment(study, {
        "experiment": exp, "rewriter": rewriter.spec, "params": rewriter.params_json(), "seed": int(seed),
        "n_requested": int(n), "n_sampled": len(sample), "sides": ",".join(sides), "n_candidates": len(cands),
        "frame": SAMPLING_FRAME, "similarity_threshold": float(threshold), "created_at": now()})
    done = store.existing_rewrite_ids(study, [it[0] for it in items])
    res.n_cached = len(done)
    if progress and done:
        progress(len(done))
    todo = [it for it in items if it[0] not in done]
    if not todo:
        res.seconds = time.perf_counter() - t0
        return res
    scorer = scorer or default_scorer(study)
    if featurizer is None:
        featurizer = default_featurizer(study)
        if featurizer is None:
            res.messages.append("no featurizers available (analysis.features missing): rewrites not featurized")
    elif featurizer is False:
        featurizer = None

    def one(it):
        rid, pid, side, ctx, resp, tid = it
        try:
            return it, rewriter.rewrite(ctx, resp, _item_rng(seed, pid, side)), None
        except RewriteError as e:
            return it, None, "; ".join(e.reasons) or e.message
        except RmtuiError as e:
            return it, None, e.message

    parallel = getattr(rewriter, "parallel", False) and concurrency > 1
    pool = ThreadPoolExecutor(max_workers=concurrency) if parallel else None
    try:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            tick = time.perf_counter()

            def lap(stage: str) -> None:
                nonlocal tick
                t = time.perf_counter()
                res.stage_seconds[stage] = res.stage_seconds.get(stage, 0.0) + t - tick
                tick = t

            outs = list(pool.map(one, part)) if pool else [one(it) for it in part]
            lap("rewrite")
            ok = [(it, r) for it, r, err in outs if r is not None]
            for it, r, err in outs:
                if r is None:
                    res.failures.append((it[1], it[2], err))
                    res.n_failed += 1
            if ok:
                new_texts = _text_frame([it[3] for it, _ in ok], [r.new_response for _, r in ok])
                orig_texts = _text_frame([it[3] for it, _ in ok], [it[4] for it, _ in ok])
                sims = similarity([it[4] for it, _ in ok], [r.new_response for _, r in ok], similarity_model,
                                  precomputed=getattr(study, "precomputed", None))
                lap("similarity")
                scorer(new_texts)
                lap("score")
                if featurizer is not None:
                    featurizer(pd.concat([orig_texts, new_texts]).drop_duplicates("text_id"))
                    lap("featurize")
                rows = []
                created = now()
                for (it, r), sim in zip(ok, sims):
                    rid, pid, side, ctx, resp, tid = it
                    new_tid = make_text_id(ctx, r.new_response)
                    rows.append({
                        "rewrite_id": rid, "pair_id": pid, "side": side, "rewriter": rewriter.name,
                        "params": json.dumps({"version": rewriter.version, **rewriter.params, **r.params},
                                             sort_keys=True, default=str),
                        "original_text_id": tid, "new_text_id": new_tid, "new_context": ctx,
                        "new_response": r.new_response, "new_text": join_transcript(ctx, r.new_response),
                        "similarity": float(sim), "experiment": exp, "kept": True, "created_at": created,
                        "perturbation": r.params.get("perturbation") or r.params.get("target"),
                        "meaning_changed": bool(sim < threshold), "notes": r.notes or None,
                    })
                    res.n_unchanged += int(new_tid == tid)
                    res.n_meaning_changed += int(sim < threshold)
                store.add_rewrites(study, pd.DataFrame(rows))
                lap("store")
                res.n_done += len(rows)
            if progress:
                progress(len(part))
    finally:
        if pool:
            pool.shutdown(wait=True)
        res.seconds = time.perf_counter() - t0
    return res


# -- the one-entry rewrite (the app) ---------------------------------------------------------------

@dataclass
class RewriteOutcome:
    rewrite_id: str
    pair_id: str
    side: str
    rewriter: str
    params: dict
    original_response: str
    new_response: str
    new_text_id: str
    rewards: pd.DataFrame          # model_id, role, old, new, change (rewritten side)
    margins: pd.DataFrame          # model_id, role, margin_old, margin_new, flip
    margin_old: dict[str, float]   # by role (pre/post/...; model_id when a role repeats)
    margin_new: dict[str, float]
    flips: dict[str, str]          # by role: aligned->misaligned | misaligned->aligned | stays ...
    similarity: float
    meaning_changed: bool
    notes: str = ""
    kept: bool = False             # stored in the study (now, or by an earlier identical rewrite)
    row: dict = field(default_factory=dict, repr=False)  # the rewrites row keep_rewrite writes
    texts: pd.DataFrame | None = field(default=None, repr=False)  # original, new and other side, for features


def rewrite_one(study: Study, pair_id: str, side: str, rewriter: str | Rewriter = "manual", *,
                text: str | None = None, perturbation: str | None = None, models=None, keep: bool = True,
                scorer: Scorer | None = None, featurizer: Featurizer | None | bool = None,
                similarity_model: str | None = None, threshold: float = DEFAULT_THRESHOLD, seed: int = 0,
                **params) -> RewriteOutcome:
    """Rewrite one side of one pair, rescore with every RM (``models``: loaded once by the caller),
    and, with ``keep``, store it (experiment ``interactive``). ``featurizer``: None featurizes kept
    rewrites with the study's offline featurizers (cheap), True always, False never."""
    from analysis.features.similarity import similarity

    side = _validate_sides([side])[0]
    pair = store.get_pair(study, pair_id)
    if pair is None:
        raise RmtuiError(f"{study.path}: no pair {pair_id!r}", "Rewrite")
    if isinstance(rewriter, str):
        if rewriter == "manual":
            params["text"] = text
        rw = make_rewriter(rewriter, perturbation=perturbation, **params)
    else:
        rw = rewriter
    ctx = pair["context"] if side == "chosen" else pair["rejected_context"]
    orig = pair["chosen_response"] if side == "chosen" else pair["rejected_response"]
    other_side = "rejected" if side == "chosen" else "chosen"
    other_ctx = pair["context"] if other_side == "chosen" else pair["rejected_context"]
    other = pair[f"{other_side}_response"]
    r = rw.rewrite(ctx, orig, _item_rng(seed, pair_id, side))
    new_tid = make_text_id(ctx, r.new_response)
    orig_tid, other_tid = make_text_id(ctx, orig), make_text_id(other_ctx, other)
    texts = _text_frame([ctx, ctx, other_ctx], [orig, r.new_response, other])
    scorer = scorer or default_scorer(study, models)
    sc = scorer(texts)
    rwdf = pd.DataFrame([{"rewrite_id": "", "side": side, "original_text_id": orig_tid,
                          "new_text_id": new_tid, "other_text_id": other_tid}])
    ch = M.reward_changes(rwdf, sc)
    if ch.empty:
        raise RmtuiError(f"pair {pair_id}: the scorer returned no rewards", "Rewrite")
    ch["flip"] = [M.flip_label(b, a) for b, a in zip(ch["margin_before"], ch["margin_after"])]
    dup = ch["role"].duplicated(keep=False) | ch["role"].isna()
    keys = np.where(dup, ch["model_id"], ch["role"])
    sim = float(similarity([orig], [r.new_response], similarity_model)[0])
    all_params = {"version": rw.version, **rw.params, **r.params}
    all_params.pop("text", None)
    rid = rewrite_id(pair_id, side, rw, INTERACTIVE, new_tid)
    out = RewriteOutcome(
        rewrite_id=rid, pair_id=pair_id, side=side, rewriter=rw.name, params=all_params,
        original_response=orig, new_response=r.new_response, new_text_id=new_tid,
        rewards=ch[["model_id", "role", "old", "new", "change"]].reset_index(drop=True),
        margins=ch[["model_id", "role"]].assign(margin_old=ch["margin_before"], margin_new=ch["margin_after"],
                                                flip=ch["flip"]).reset_index(drop=True),
        margin_old=dict(zip(keys, ch["margin_before"].astype(float))),
        margin_new=dict(zip(keys, ch["margin_after"].astype(float))),
        flips=dict(zip(keys, ch["flip"])), similarity=sim, meaning_changed=sim < threshold, notes=r.notes,
        row={"rewrite_id": rid, "pair_id": pair_id, "side": side, "rewriter": rw.name,
             "params": json.dumps(all_params, sort_keys=True, default=str), "original_text_id": orig_tid,
             "new_text_id": new_tid, "new_context": ctx, "new_response": r.new_response,
             "new_text": join_transcript(ctx, r.new_response), "similarity": sim, "experiment": INTERACTIVE,
             "kept": True, "perturbation": r.params.get("perturbation") or r.params.get("target"),
             "meaning_changed": sim < threshold, "notes": r.notes or None},
        texts=texts,
    )
    if keep:
        keep_rewrite(study, out, featurizer=featurizer)
        return out
    if featurizer is not None and featurizer is not False:
        (default_featurizer(study) if featurizer is True else featurizer)(texts)
    out.kept = bool((store.get_rewrite(study, rid) or {}).get("kept"))
    return out


def keep_rewrite(study: Study, outcome: RewriteOutcome, *, featurizer: Featurizer | None | bool = None) -> None:
    """Store a rewrite made with ``keep=False`` (the app's ctrl+s), featurized like ``rewrite_one`` does
    with ``keep``: None uses the study's offline featurizers, False none."""
    if not outcome.row:
        raise RmtuiError(f"rewrite {outcome.rewrite_id}: nothing to keep (not made by rewrite_one)", "Rewrite")
    if featurizer is None or featurizer is True:
        featurizer = default_featurizer(study)
    if featurizer and outcome.texts is not None:
        featurizer(outcome.texts)
    store.add_rewrites(study, pd.DataFrame([outcome.row]))
    outcome.kept = True


def discard_rewrite(study: Study, rewrite_id: str) -> bool:
    """Remove a stored rewrite (its scores stay cached by text id). True if it existed."""
    return store.delete_rewrite(study, rewrite_id)


# -- the robustness fit ----------------------------------------------------------------------------

@dataclass
class RobustnessFit:
    fit_id: str
    n: int                          # rewrites in the fit (text changed, scored by every RM)
    n_unchanged: int
    robustness: pd.DataFrame        # outcome, term, estimate, se, ci_low, ci_high, p, n, se_type
    sensitivity: pd.DataFrame
    flip_rates: pd.DataFrame
    messages: list[str]
    n_meaning_changed: int = 0
    options: dict = field(default_factory=dict)


def _discrete_features(feats: pd.DataFrame) -> list[str]:
    out = []
    for feat, g in feats.groupby("feature"):
        kind = g["kind"].dropna().iloc[0] if g["kind"].notna().any() else None
        if kind in M.DISCRETE_KINDS:
            out.append(feat)
        elif kind is None:
            v = g["value"].dropna()
            if len(v) and np.allclose(v, v.round()) and v.nunique() <= 3:
                out.append(feat)
    return out


def robustness_data(study: Study, experiment: str | None = None, *, tie_tol: float = 0.0) -> dict:
    """Everything the fit needs, from the study: rewrites, reward changes (``tie_tol``: |margin| <= tol
    is a tie, as in the fit), feature flips."""
    models = _study_models(study)
    rw = store.rewrites(study, experiment=experiment)
    unchanged = rw["new_text_id"] == rw["original_text_id"]
    rw_changed = rw[~unchanged].reset_index(drop=True)
    ids = set(rw_changed["original_text_id"]) | set(rw_changed["new_text_id"]) | set(rw_changed["other_text_id"])
    scores = store.scores_for(study, ids)
    changes = M.reward_changes(rw_changed, scores, tol=tie_tol)
    feats = store.features_for(study, set(rw_changed["original_text_id"]) | set(rw_changed["new_text_id"]))
    flips = M.feature_flips(rw_changed, feats) if len(feats) else pd.DataFrame(
        columns=["rewrite_id", "side", "feature", "before", "after", "flip"])
    return {"models": models, "rewrites": rw, "n_unchanged": int(unchanged.sum()), "changes": changes,
            "features": feats, "flips": flips}


def latest_tie_tol(study: Study) -> float:
    """The tie tolerance of the study's latest fit (0 when there is none)."""
    from analysis.store import metrics as ms

    fit = ms.latest_fit(study)
    opts = (fit or {}).get("options") or {}
    return float(opts.get("tie_tol", 0.0) or 0.0) if isinstance(opts, dict) else 0.0


def fit_robustness(study: Study, experiment: str | None = None, *, min_count: int = 5, min_events: int = 5,
                   tie_tol: float | None = None, include_meaning_changed: bool = False,
                   alpha: float = 0.05) -> RobustnessFit:
    """Fit the robustness score (LPMs, post-D RM) and the sensitivity table; write both.

    One row per rewrite whose text changed and that every RM scored; rewrites flagged
    ``meaning_changed`` are left out (counted) unless ``include_meaning_changed``. Each outcome is fitted
    on the rewrites at risk of it (variant ``at_risk``); the all-rewrites fit (the paper's) is stored
    beside it as variant ``all_rewrites``. ``tie_tol``: None takes the latest fit's (``rmtui fit
    --tie-tol``). ``experiment=None``: all kept rewrites (interactive ones included).
    """
    tol = latest_tie_tol(study) if tie_tol is None else float(tie_tol)
    d = robustness_data(study, experiment, tie_tol=tol)  # one tie rule for every variant and table
    if d["rewrites"].empty:
        raise RmtuiError(f"{study.path}: no rewrites{' in experiment ' + experiment if experiment else ''}; "
                         "run `rmtui rewrite` first", "Robustness")
    models, changes = d["models"], d["changes"]
    post = post_model_id(models)
    n_models = models["model_id"].nunique()
    complete = changes.groupby("rewrite_id")["model_id"].nunique()
    changes = changes[changes["rewrite_id"].isin(complete[complete == n_models].index)]
    n_meaning = 0
    if "meaning_changed" in changes.columns:
        mc = changes["meaning_changed"].astype("boolean").fillna(False).astype(bool)
        n_meaning = int(changes.loc[mc, "rewrite_id"].nunique())
        if not include_meaning_changed:
            changes = changes[~mc]
    post_rows = changes[changes["model_id"] == post].reset_index(drop=True)
    messages = [M.SIGN_CONVENTION, "outcomes use the post-D RM " + post,
                "unit: one rewrite (one side replaced, the other kept); SEs clustered by pair",
                f"tie tolerance {tol:g} (|margin| <= tol is a tie)"]
    if d["n_unchanged"]:
        messages.append(f"{d['n_unchanged']} rewrites left the text unchanged: not in the fit")
    if n_meaning:
        messages.append(f"{n_meaning} rewrites flagged meaning_changed (similarity below the threshold): "
                        + ("kept in the fit (include_meaning_changed)" if include_meaning_changed
                           else "left out of the fit"))
    discrete = _discrete_features(d["features"]) if len(d["features"]) else []
    ind = M.flip_indicators(d["flips"], list(post_rows["rewrite_id"]), features=discrete)
    table, m = M.robustness_score(post_rows, ind, tie_tol=tol, min_count=min_count, min_events=min_events,
                                  alpha=alpha)
    messages += m
    messages.append("variants: " + "; ".join(f"{k}: {v}" for k, v in M.VARIANT_LABELS.items()))
    sens = M.sensitivity(changes)
    fit_id = "robustness-" + digest("robustness", experiment or "*", post, str(min_count), str(min_events),
                                    repr(tol), str(include_meaning_changed), *sorted(post_rows["rewrite_id"]),
                                    size=6)
    options = {"experiment": experiment, "min_count": min_count, "min_events": min_events, "tie_tol": tol,
               "include_meaning_changed": include_meaning_changed, "n_meaning_changed": n_meaning,
               "alpha": alpha, "features": discrete, "variants": list(M.ROBUSTNESS_VARIANTS),
               "se": "cluster by pair (CR1, statsmodels); Fisher exact + Newcombe where cells are small"}
    store.write_robustness_fit(
        study, fit_id, options=options, pre_model_id=pre_model_id(models), post_model_id=post, n=len(post_rows),
        robustness=table, sensitivity=sens, messages=messages, se_type="cluster(pair)")
    return RobustnessFit(fit_id, len(post_rows), d["n_unchanged"], table, sens, M.flip_rates(changes), messages,
                         n_meaning_changed=n_meaning, options=options)


def robustness_stale(study: Study) -> list[str]:
    """How the study moved on since its latest robustness fit (tie tolerance, rewrites, models)."""
    fit = store.latest_robustness_fit(study)
    if fit is None:
        return []
    fid = fit["fit_id"]
    try:
        opts = json.loads(fit.get("options") or "{}")
    except (TypeError, ValueError):
        opts = {}
    out = []
    tol = latest_tie_tol(study)
    if "tie_tol" not in opts:
        out.append(f"robustness fit {fid} recorded no tie tolerance (made before it was recorded): "
                   "rerun rmtui rewrite --fit")
    elif float(opts["tie_tol"]) != tol:
        out.append(f"robustness fit {fid} used tie tolerance {opts['tie_tol']:g}; the latest fit uses {tol:g}: "
                   "rerun the robustness fit")
    last = store.latest_rewrite_time(study)
    if last is not None and fit.get("created_at") is not None and pd.Timestamp(last) > pd.Timestamp(fit["created_at"]):
        out.append(f"rewrites were stored after robustness fit {fid}: rerun the robustness fit")
    models = store.models(study)
    if len(models) and post_model_id(models) != fit.get("post_model_id"):
        out.append(f"robustness fit {fid} used post {fit.get('post_model_id')}; the latest post-D RM is "
                   f"{post_model_id(models)}: rerun the robustness fit")
    return out


def robustness_summary(study: Study) -> dict:
    """JSON-able summary of the latest robustness fit for ``rmtui summary``; {} when there is none."""
    fit = store.latest_robustness_fit(study)
    if fit is None:
        return {}
    opts = json.loads(fit["options"] or "{}")
    rob = store.robustness_rows(study, fit["fit_id"])
    sens = store.sensitivity_rows(study, fit["fit_id"])
    exps = store.experiments(study)
    d = robustness_data(study, opts.get("experiment"), tie_tol=float(opts.get("tie_tol", 0.0) or 0.0))
    rates = M.flip_rates(d["changes"])
    post_sens = sens[(sens["model_id"] == fit["post_model_id"]) & (sens["side"] == "all")]
    post_sens = post_sens.reindex(post_sens["mean_change"].abs().sort_values(ascending=False).index)

    def recs(df: pd.DataFrame) -> list[dict]:
        return json.loads(df.to_json(orient="records", date_format="iso"))

    return {
        "fit_id": fit["fit_id"], "created_at": str(fit["created_at"]), "n": int(fit["n"]),
        "experiment": opts.get("experiment"), "post_model_id": fit["post_model_id"],
        "pre_model_id": fit["pre_model_id"], "sign_convention": M.SIGN_CONVENTION,
        "messages": json.loads(fit["messages"] or "[]"),
        "experiments": recs(exps), "flip_rates": recs(rates),
        "score": recs(rob.drop(columns=["fit_id"])),
        "sensitivity_post": recs(post_sens.drop(columns=["fit_id"])),
    }
