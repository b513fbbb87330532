"""How well the suspect-label score finds planted label errors.

On a study's held-out pairs (the demo: the pairs the embedded RMs never trained on; all pairs when
none are marked), flip the human label of a seeded 10 % (swap chosen and rejected: both margins
negate, gamma c <-> r; each text keeps its rewards, an RM scores a text, not a label), recompute the
suspect score on the study's margin scale, and print precision@k of the ranking against random
(= the flip rate) and the recall of the flips in the top 10 %.

    PYTHONPATH=$PWD python -m benchmarks.bench_suspect --study ~/.cache/rmtui/demo.duckdb [--seed 0]

Note: on real data some unflipped pairs are themselves label errors, so precision@k is a lower bound.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.10)
    args = ap.parse_args()

    from analysis.metrics.suspect import flip_labels, precision_at_k, suspect_scores
    from analysis.store import metrics as ms
    from analysis.store import open_study

    with open_study(args.study, read_only=True) as st:
        pm = ms.read_pair_metrics(st)
    held = pm[pm["heldout"].fillna(False).astype(bool)]
    frame = "held-out pairs"
    if held.empty:
        held, frame = pm, "all pairs (none marked held-out)"
    held = held.reset_index(drop=True)
    sd = {r: float(pm[f"margin_{r}"][pm[f"margin_{r}"] != 0].std(ddof=1)) for r in ("pre", "post")}
    rng = np.random.default_rng(args.seed)
    n = len(held)
    k_flip = int(round(args.rate * n))
    idx = rng.choice(n, k_flip, replace=False)
    truth = np.zeros(n, bool)
    truth[idx] = True
    flipped = flip_labels(held, idx)
    score = suspect_scores(flipped, sd=sd)
    score_rm = suspect_scores(flipped, sd=sd, labeler_weight=0.0)
    ks = [10, 25, 50, 100, k_flip, 2 * k_flip]
    p = precision_at_k(score, truth, ks)
    p_rm = precision_at_k(score_rm, truth, ks)
    rand = [precision_at_k(rng.random(n), truth, ks) for _ in range(200)]
    has_gamma = held["gamma"].notna().any()
    print(f"study {args.study}: {frame}, n = {n:,}; flipped {k_flip:,} ({args.rate:.0%}, seed {args.seed}); "
          f"gamma {'present' if has_gamma else 'absent'}")
    print(f"{'k':>6} {'precision@k':>12} {'RMs only':>9} {'random (mean of 200)':>21}")
    for k in p:
        rmean = float(np.mean([r[k] for r in rand]))
        print(f"{k:>6} {p[k]:>12.3f} {p_rm[k]:>9.3f} {rmean:>21.3f}")
    top = np.argsort(-score)[:k_flip]
    print(f"recall of the flips in the top {k_flip:,}: {truth[top].mean():.3f} (random {args.rate:.3f})")


if __name__ == "__main__":
    main()
