"""Benchmark: feature imprint with cluster-by-pair SEs at hh-rlhf scale.

321,600 texts (160,800 pairs x 2 sides) x 20 features, three targets (pre, post, shift) in one fit.
Prints the time of rmtui's imprint (numpy QR + bincount sandwich) and, with --statsmodels, of the same
three fits through statsmodels OLS(cov_type='cluster'), and the largest SE difference between them.

    python benchmarks/bench_imprint.py [--pairs 160800] [--features 20] [--statsmodels]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import pandas as pd

from analysis.metrics import imprint


def make_rows(n_pairs: int, k: int, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    feats = [f"f{j:02d}" for j in range(k)]
    X = np.empty((n, k))
    for j in range(k):
        X[:, j] = rng.integers(0, 2, n) if j % 2 == 0 else rng.normal(0, 1, n)
    beta = rng.normal(0, 1, k)
    u = rng.normal(0, 1, n_pairs)
    pid = np.repeat(np.arange(n_pairs), 2)
    pre = X @ beta + u[pid] + rng.normal(0, 1, n)
    post = pre + X @ (beta * 0.5) + rng.normal(0, 0.5, n)
    df = pd.DataFrame(X, columns=feats)
    df.insert(0, "pair_id", pid)
    df.insert(1, "side", np.tile(["chosen", "rejected"], n_pairs))
    df["pre"] = pre
    df["post"] = post
    df["shift"] = post - pre
    return df, feats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=160_800)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--statsmodels", action="store_true", help="also time statsmodels (slower)")
    a = ap.parse_args()
    rows, feats = make_rows(a.pairs, a.features)
    print(f"{len(rows):,} texts ({a.pairs:,} pairs) x {len(feats)} features, targets pre/post/shift, "
          f"cluster-by-pair SEs; {os.cpu_count()} CPUs")
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        res = imprint(rows, feats, ("pre", "post", "shift"), se="cluster")
        times.append(time.perf_counter() - t0)
    print(f"rmtui imprint (3 targets): best {min(times):.2f} s, median {np.median(times):.2f} s "
          f"over {a.repeats} runs; {len(res.table)} coefficients")
    if a.statsmodels:
        import statsmodels.api as sm

        X = sm.add_constant(rows[feats].to_numpy())
        g = rows["pair_id"].to_numpy()
        t0 = time.perf_counter()
        worst = 0.0
        for t in ("pre", "post", "shift"):
            r = sm.OLS(rows[t].to_numpy(), X).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
            mine = res.table[res.table.target == t]["se"].to_numpy()
            worst = max(worst, float(np.max(np.abs(mine - r.bse[1:]) / r.bse[1:])))
        dt = time.perf_counter() - t0
        print(f"statsmodels OLS cluster (3 targets): {dt:.2f} s; largest relative SE difference {worst:.1e}")


if __name__ == "__main__":
    main()
