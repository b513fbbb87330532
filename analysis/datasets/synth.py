"""A synthetic study: every table the app reads, filled with realistic, deterministic data.

``make_synthetic_study(path, n_pairs, seed)`` writes a study of ``n_pairs`` hh-rlhf-shaped pairs with
two reward models (pre-D and post-D), scores, features (with definitions), one fit with its feature
imprint (OLS, standard errors clustered by pair, Bonferroni p) and per-pair metrics (margins,
agreement, regime, labeler preference gamma, reward-shift angle theta, confusing flags).

The texts are composed from phrase pools chosen by planted latent features (harmless, helpful,
sentiment, eloquent, refusal), so what the featurizer "synth" reports can be read in the text, and
the rewards follow planted imprints (post-D: harmless about +2.1, helpful +1.1, eloquent +0.8,
sentiment +0.75, as the SEAL paper reads its post-D RM). Same seed, same study, byte for byte in every
table (timestamps are fixed). Vectorized: 160,000 pairs take a few seconds.

It is for tests and benchmarks; it never pretends to be data: the dataset is named ``synthetic``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.hashing import digest

SUBSETS = ["harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"]
SUBSET_P = [0.27, 0.27, 0.15, 0.31]
FIXED_TIME = _dt.datetime(2026, 1, 1, 12, 0, 0)
FEATURIZER = "synth"
FEATURES = [
    # name, kind, role, description
    ("harmless", "binary", "target", "The response avoids helping with harm (planted)."),
    ("helpful", "binary", "target", "The response answers the request (planted)."),
    ("sentiment", "ordinal", "spoiler", "Tone: -1 negative, 0 neutral, +1 positive (planted)."),
    ("eloquent", "binary", "spoiler", "Long, polished wording (planted)."),
    ("refusal", "binary", "spoiler", "Refusal phrasing such as 'I can't help with that' (planted)."),
    ("length", "continuous", "spoiler", "Words in the response / 100."),
]
# planted imprints: (pre, post) coefficient of each feature
PLANTED = {
    "harmless": (0.6, 2.1),
    "helpful": (0.9, 1.1),
    "sentiment": (0.5, 0.75),
    "eloquent": (0.7, 0.8),
    "refusal": (0.2, -0.3),
    "length": (0.3, 0.05),
}

_TOPICS = [
    "bake sourdough bread", "fix a flat bicycle tire", "learn to play the guitar", "write a cover letter",
    "train a puppy to sit", "pick a lock", "make my neighbor's dog stop barking", "get revenge on my boss",
    "cheat on a chemistry exam", "start a vegetable garden", "invest my first paycheck", "stop snoring",
    "hotwire a car", "find cheap flights to Lisbon", "clean a cast iron pan", "say no to a friend",
    "lose ten pounds quickly", "make a fake ID", "calm down before an interview", "brew cold coffee",
    "prank my roommate", "avoid paying taxes", "teach my kid fractions", "fold a fitted sheet",
]
_PRE_TURNS = [
    "", "\n\nHuman: Hi, can I ask you something?\n\nAssistant: Of course, what would you like to know?",
    "\n\nHuman: I have a question.\n\nAssistant: Sure, go ahead.",
    "\n\nHuman: Are you a real person?\n\nAssistant: No, I am an AI assistant. How can I help?",
]
_ASK = ["How do I {t}?", "What is the best way to {t}?", "Can you tell me how to {t}?", "I want to {t}. Any tips?"]
_OPEN = {
    # (refusal) -> openers
    1: ["I'm sorry, but I can't help with that.", "I can't help with that request.",
        "I won't help with that, it could hurt someone."],
    0: ["Sure.", "Good question.", "Here is what I would do.", "Okay."],
}
_BODY_HELPFUL = [
    "First, gather what you need, then take it one step at a time and check your progress as you go.",
    "Start small, practice a little every day, and ask someone experienced to look at your results.",
    "The usual approach is to prepare well, follow a simple plan, and adjust when something goes wrong.",
    "Break it into three parts: plan it, do the first part today, and review how it went tomorrow.",
]
_BODY_UNHELPFUL = [
    "I am not sure what you mean.", "Maybe look it up somewhere.", "Why would you want that?",
    "That depends on a lot of things.",
]
_HARMFUL = [
    "You could just take it when nobody is watching.", "Lie about it, nobody will check.",
    "Break in at night when it is quiet.", "Make sure nobody can trace it back to you.",
]
_TONE = {-1: ["Honestly this is a bad idea and a waste of time.", "This is annoying and frustrating."],
         0: ["", "That is all."],
         1: ["Good luck, you will do great!", "I hope this helps, and have a wonderful day!"]}
_ELOQUENT = [
    "Moreover, consider the broader circumstances, since thoughtful preparation invariably yields "
    "considerably more satisfying outcomes.",
    "Ultimately, a deliberate, measured approach tends to produce remarkably dependable results.",
]


@dataclass
class SynthResult:
    path: Path
    n_pairs: int
    seconds: float
    regime_counts: dict


def _table(cols: dict) -> "pa.Table":
    """A pyarrow table from numpy columns (object arrays become strings); scalars are broadcast."""
    import pyarrow as pa

    n = max(len(v) for v in cols.values() if isinstance(v, np.ndarray))
    arrays = {}
    for k, v in cols.items():
        if not isinstance(v, np.ndarray):
            v = np.full(n, v, dtype=object if isinstance(v, str) else None)
        if v.dtype == object:
            arrays[k] = pa.array(v, type=pa.string(), from_pandas=True)
        else:
            arrays[k] = pa.array(v)
    return pa.table(arrays)


def _pick(rng: np.random.Generator, pool: list[str], n: int) -> np.ndarray:
    return np.asarray(pool, dtype=object)[rng.integers(0, len(pool), n)]


def _responses(rng, n, harmless, helpful, sentiment, eloquent, refusal) -> np.ndarray:
    opener = np.where(refusal == 1, _pick(rng, _OPEN[1], n), _pick(rng, _OPEN[0], n))
    body = np.where(helpful == 1, _pick(rng, _BODY_HELPFUL, n), _pick(rng, _BODY_UNHELPFUL, n))
    body = np.where(refusal == 1, np.where(helpful == 1, "Instead, here is a safer idea: " + body, ""), body)
    harm = np.where(harmless == 0, _pick(rng, _HARMFUL, n), "")
    tone = np.empty(n, dtype=object)
    for s in (-1, 0, 1):
        m = sentiment == s
        tone[m] = _pick(rng, _TONE[s], int(m.sum()))
    elo = np.where(eloquent == 1, _pick(rng, _ELOQUENT, n), "")
    parts = [opener, body, harm, elo, tone]
    out = []
    for row in zip(*parts):
        out.append(" ".join(p for p in row if p))
    return np.asarray(out, dtype=object)


def _latent(rng, n, bias):
    """Latent features of one side; ``bias`` > 0 for the side humans tend to choose."""
    harmless = (rng.random(n) < 0.70 + 0.15 * bias).astype(int)
    helpful = (rng.random(n) < 0.55 + 0.15 * bias).astype(int)
    sentiment = rng.choice([-1, 0, 1], n, p=[0.2 - 0.05 * bias, 0.5, 0.3 + 0.05 * bias])
    eloquent = (rng.random(n) < 0.3).astype(int)
    refusal = ((harmless == 1) & (rng.random(n) < 0.25)).astype(int)
    return harmless, helpful, sentiment, eloquent, refusal


def _ols_cluster(X: np.ndarray, y: np.ndarray, clusters: int) -> tuple[np.ndarray, np.ndarray, float]:
    """OLS with standard errors clustered by pair (rows 0..n-1 chosen, n..2n-1 rejected)."""
    n, k = X.shape
    XtX_inv = np.linalg.inv(X.T @ X)
    beta = XtX_inv @ (X.T @ y)
    e = y - X @ beta
    half = n // 2
    S = X[:half] * e[:half, None] + X[half:] * e[half:, None]  # score per pair
    meat = S.T @ S
    g = clusters
    corr = g / (g - 1) * (n - 1) / (n - k)
    V = corr * XtX_inv @ meat @ XtX_inv
    r2 = 1 - (e @ e) / ((y - y.mean()) @ (y - y.mean()))
    return beta, np.sqrt(np.diag(V)), float(r2)


def make_synthetic_study(path: str | Path, n_pairs: int = 1000, seed: int = 0, *, overwrite: bool = False,
                         heldout_frac: float = 0.2, with_models: bool = True) -> SynthResult:
    """Write a synthetic study of ``n_pairs`` pairs to ``path`` (a new DuckDB file).

    ``with_models=False`` leaves out the synthetic models and scores (the rest stays), so a test can
    score the study's texts with real reward models.
    """
    import time

    from analysis.store import open_study
    from analysis.store.core import bulk_insert

    t0 = time.perf_counter()
    path = Path(path)
    if path.exists():
        if not overwrite:
            from analysis.errors import StudyError

            raise StudyError(f"{path}: exists; pass overwrite=True to replace it", "Study exists")
        path.unlink()
        wal = Path(str(path) + ".wal")
        if wal.exists():
            wal.unlink()
    rng = np.random.default_rng(seed)
    n = int(n_pairs)
    subset = np.asarray(SUBSETS, dtype=object)[rng.choice(len(SUBSETS), n, p=SUBSET_P)]
    split = np.where(rng.random(n) < 0.95, "train", "test").astype(object)
    topic = _pick(rng, _TOPICS, n)
    ask = _pick(rng, _ASK, n)
    pre = _pick(rng, _PRE_TURNS, n)
    context = np.asarray([f"{p}\n\nHuman: {a.format(t=t)}" for p, a, t in zip(pre, ask, topic)], dtype=object)

    lat_c = _latent(rng, n, 1.0)
    lat_r = _latent(rng, n, -1.0)
    resp_c = _responses(rng, n, *lat_c)
    resp_r = _responses(rng, n, *lat_r)
    # a few identical pairs, as hh-rlhf has
    ident = rng.random(n) < 0.002
    resp_r[ident] = resp_c[ident]
    lat_r = tuple(np.where(ident, c, r) for c, r in zip(lat_c, lat_r))

    text_c = np.asarray([f"{c}\n\nAssistant: {r}" for c, r in zip(context, resp_c)], dtype=object)
    text_r = np.asarray([f"{c}\n\nAssistant: {r}" for c, r in zip(context, resp_r)], dtype=object)
    cache: dict[tuple[str, str], str] = {}

    def tid(c: str, r: str) -> str:
        key = (c, r)
        v = cache.get(key)
        if v is None:
            v = cache[key] = digest("text", c, r)
        return v

    tid_c = np.asarray([tid(c, r) for c, r in zip(context, resp_c)], dtype=object)
    tid_r = np.asarray([tid(c, r) for c, r in zip(context, resp_r)], dtype=object)
    raw = rng.bytes(10 * n).hex()
    pair_ids = np.asarray([raw[20 * i:20 * i + 20] for i in range(n)], dtype=object)
    heldout = rng.random(n) < heldout_frac

    pairs = _table({
        "pair_id": pair_ids, "dataset": "synthetic", "subset": subset, "split": split,
        "source": f"synth:seed={seed}", "source_row": np.arange(1, n + 1, dtype=np.int32),
        "context": context, "chosen_response": resp_c, "rejected_response": resp_r,
        "chosen_text": text_c, "rejected_text": text_r, "chosen_text_id": tid_c, "rejected_text_id": tid_r,
        "rejected_context": context, "context_differs": False, "identical": ident,
        "heldout": heldout, "ingest_id": 1,
    })
    texts = _table({
        "pair_id": np.concatenate([pair_ids, pair_ids]),
        "side": np.repeat(np.asarray(["chosen", "rejected"], dtype=object), n),
        "text_id": np.concatenate([tid_c, tid_r]),
        "context": np.concatenate([context, context]),
        "response": np.concatenate([resp_c, resp_r]),
        "text": np.concatenate([text_c, text_r]),
    })

    # features: one row per distinct text
    names = [f[0] for f in FEATURES]
    len_c = np.asarray([len(r.split()) for r in resp_c]) / 100.0
    len_r = np.asarray([len(r.split()) for r in resp_r]) / 100.0
    fc = dict(zip(names, list(lat_c) + [len_c]))
    fr = dict(zip(names, list(lat_r) + [len_r]))
    X = np.column_stack([np.concatenate([fc[k], fr[k]]).astype(float) for k in names])
    all_tid = np.concatenate([tid_c, tid_r])
    _, first = np.unique(all_tid, return_index=True)
    first.sort()
    feats = _table({
        "text_id": np.repeat(all_tid[first], len(names)),
        "featurizer": FEATURIZER,
        "name": np.tile(np.asarray(names, dtype=object), len(first)),
        "value": X[first].reshape(-1),
    })

    # rewards from planted imprints + noise; the post-D RM is sharper
    b_pre = np.array([PLANTED[k][0] for k in names])
    b_post = np.array([PLANTED[k][1] for k in names])
    noise_pre = rng.normal(0, 1.2, 2 * n)
    noise_post = rng.normal(0, 0.9, 2 * n)
    r_pre = np.round(-0.5 + X @ b_pre + noise_pre, 4)
    r_post = np.round(-1.0 + X @ b_post + noise_post, 4)
    # identical texts get identical rewards (ties)
    r_pre[n:][ident] = r_pre[:n][ident]
    r_post[n:][ident] = r_post[:n][ident]
    models = pd.DataFrame({
        "model_id": ["synth-pre-0001", "synth-post-0001"],
        "name": ["synth-rm-pre", "synth-rm-post"],
        "path_or_hub_id": ["synthetic/rm-pre", "synthetic/rm-post"],
        "revision": ["synthetic", "synthetic"], "role": ["pre", "post"], "format": ["pair", "pair"],
        "dtype": ["fp32", "fp32"], "device": ["cpu", "cpu"], "max_length": [None, None],
        "padding_side": ["right", "right"], "truncation_side": ["left", "left"],
        "token_budget": [16384, 16384], "trust_remote_code": [False, False],
        "settings": [json.dumps({"synthetic": True})] * 2, "created_at": [FIXED_TIME, FIXED_TIME],
    })
    scores = pd.concat([
        pd.DataFrame({"model_id": mid, "text_id": all_tid[first], "reward": r[first], "truncated": False,
                      "n_tokens": (X[first, names.index("length")] * 130 + 20).astype(np.int32)})
        for mid, r in (("synth-pre-0001", r_pre), ("synth-post-0001", r_post))
    ], ignore_index=True)

    # the fit: OLS of reward on features, pooled texts, SE clustered by pair, Bonferroni
    fit_id = f"fit-synth-{seed:04d}"
    Xc = np.column_stack([np.ones(2 * n), X])
    imp_rows = []
    r2s = {}
    for target, y in (("pre", r_pre), ("post", r_post), ("shift", r_post - r_pre)):
        beta, se, r2 = _ols_cluster(Xc, y, n)
        r2s[target] = r2
        tval = beta / se
        # two-sided p from the normal tail (df = n - 1 is in the thousands; exact enough, no scipy import)
        p = np.array([math.erfc(abs(float(v)) / math.sqrt(2.0)) for v in tval])
        k = len(names)
        for j, name in enumerate(["(intercept)"] + names):
            imp_rows.append((fit_id, target, name if j == 0 else f"{FEATURIZER}.{name}", beta[j], se[j],
                             beta[j] - 1.96 * se[j], beta[j] + 1.96 * se[j], p[j], min(1.0, p[j] * k),
                             p[j], 2 * n, "cluster(pair)", None, r2))
    imprint = pd.DataFrame(imp_rows, columns=["fit_id", "target", "feature", "estimate", "se", "ci_low",
                                              "ci_high", "p", "p_bonferroni", "p_bh", "n", "se_type", "vif", "r2"])
    fits = pd.DataFrame([{
        "fit_id": fit_id, "kind": "imprint", "created_at": FIXED_TIME,
        "options": json.dumps({"se": "cluster(pair)", "features": [f"{FEATURIZER}.{k}" for k in names]}),
        "pre_model_id": "synth-pre-0001", "post_model_id": "synth-post-0001", "se_type": "cluster(pair)",
        "n": 2 * n, "messages": "[]",
    }])

    # pair metrics
    rc_pre, rr_pre, rc_post, rr_post = r_pre[:n], r_pre[n:], r_post[:n], r_post[n:]
    m_pre = rc_pre - rr_pre
    m_post = rc_post - rr_post
    tie_pre, tie_post = m_pre == 0, m_post == 0
    agree_pre = pd.array(np.where(tie_pre, -1, (m_pre > 0).astype(int)), dtype="Int32")
    agree_post = pd.array(np.where(tie_post, -1, (m_post > 0).astype(int)), dtype="Int32")
    agree_pre[tie_pre] = pd.NA
    agree_post[tie_post] = pd.NA
    ap, aq = (m_pre > 0), (m_post > 0)
    regime = np.select([tie_pre | tie_post, ap & aq, ~ap & aq, ~ap & ~aq, ap & ~aq],
                       ["tie", "stayed_aligned", "got_aligned", "resists_alignment", "reversed"], "unscored")
    s_c = 2 * fc["harmless"] + fc["helpful"]
    s_r = 2 * fr["harmless"] + fr["helpful"]
    gamma = np.select([s_c > s_r, s_c == s_r], ["c", "i"], "r").astype(object)
    cross = rc_pre * rr_post - rr_pre * rc_post
    dot = rc_pre * rc_post + rr_pre * rr_post
    theta = np.degrees(np.arctan2(cross, dot))
    same_target = (fc["harmless"] == fr["harmless"]) & (fc["helpful"] == fr["helpful"])
    sides_rm = (gamma == "r") & (m_post < 0)
    metrics = pd.DataFrame({
        "pair_id": pair_ids, "fit_id": fit_id,
        "reward_chosen_pre": rc_pre, "reward_rejected_pre": rr_pre,
        "reward_chosen_post": rc_post, "reward_rejected_post": rr_post,
        "margin_pre": np.round(m_pre, 4), "margin_post": np.round(m_post, 4),
        "agree_pre": agree_pre, "agree_post": agree_post, "tie_pre": tie_pre, "tie_post": tie_post,
        "regime": regime.astype(object), "gamma": gamma, "theta": np.round(theta, 3),
        "same_target_labels": same_target, "near_identical": ident, "labeler_sides_with_rm": sides_rm,
        "confusing": same_target | ident | sides_rm,
    })
    feature_defs = pd.DataFrame([{"featurizer": FEATURIZER, "name": nm, "kind": kind, "role": role,
                                  "proxy": True, "description": desc} for nm, kind, role, desc in FEATURES])
    featurizers = pd.DataFrame([{"featurizer": FEATURIZER, "version": "1", "config": json.dumps({"seed": seed}),
                                 "created_at": FIXED_TIME}])
    ingests = pd.DataFrame([{"ingest_id": 1, "source": f"synth:n={n},seed={seed}", "options": "{}",
                             "rmtui_version": "synthetic", "started_at": FIXED_TIME, "finished_at": FIXED_TIME,
                             "n_read": n, "n_added": n, "n_issues": 0, "status": "done"}])

    frames = {
        "ingests": ingests, "pairs": pairs, "texts": texts, "models": models, "scores": scores,
        "featurizers": featurizers, "feature_defs": feature_defs, "features": feats, "fits": fits,
        "imprint": imprint, "pair_metrics": metrics,
    }
    if not with_models:
        del frames["models"], frames["scores"]
    with open_study(path) as st:
        bulk_insert(st, frames)
        st.set_meta("synthetic", json.dumps({"n_pairs": n, "seed": seed}))
    counts = pd.Series(regime).value_counts().to_dict()
    return SynthResult(path, n, time.perf_counter() - t0, {k: int(v) for k, v in counts.items()})


if __name__ == "__main__":  # pragma: no cover
    import sys

    res = make_synthetic_study(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
                               overwrite=True)
    print(f"{res.n_pairs} pairs in {res.seconds:.2f} s: {res.regime_counts}")
