"""Benchmark: feature imprint with cluster-by-pair SEs at hh-rlhf scale.

321,600 texts (160,800 pairs x 2 sides) x 20 features, three targets (pre, post, shift) in one fit.
Prints the time of rmtui's imprint (numpy QR + bincount sandwich) and, with --statsmodels, of the same
three fits through statsmodels OLS(cov_type='cluster'), and the largest SE difference between them.

    python benchmarks/bench_imprint.py [--pairs 160800] [--features 20] [--statsmodels]
    python benchmarks/bench_imprint.py --fit-study [--pairs 160800]   # end to end: fit_study on a DuckDB study
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


def bench_fit_study(n_pairs: int, k: int) -> None:
    """Build a study (pairs, 2 models, k features per text) in a temp dir and time fit_study."""
    import tempfile

    from analysis.fit.study_fit import FitOptions, fit_study
    from analysis.store import open_study

    rows, feats = make_rows(n_pairs, k)
    rng = np.random.default_rng(1)
    words = np.array("the a to you I it is that and of can help not sorry sure here".split())
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bench.duckdb"
        t0 = time.perf_counter()
        with open_study(path) as st:
            tid = np.array([f"t{i}" for i in range(len(rows))])
            pairs = pd.DataFrame({
                "pair_id": [f"p{i}" for i in range(n_pairs)], "subset": "harmless-base", "split": "train",
                "chosen_text_id": tid[0::2], "rejected_text_id": tid[1::2],
                "chosen_response": [" ".join(rng.choice(words, 40)) for _ in range(n_pairs)],
                "rejected_response": [" ".join(rng.choice(words, 40)) for _ in range(n_pairs)],
                "identical": False})
            scores = pd.concat([pd.DataFrame({"model_id": m, "text_id": tid, "reward": rows[c].to_numpy()})
                                for m, c in (("pre", "pre"), ("post", "post"))])
            long = pd.DataFrame({"text_id": np.tile(tid, k), "featurizer": "bench",
                                 "name": np.repeat(feats, len(tid)),
                                 "value": rows[feats].to_numpy().T.reshape(-1)})
            with st.transaction() as cur:
                for name, df in (("pairs", pairs), ("scores", scores), ("features", long)):
                    cur.register("_d", df)
                    cur.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _d")
                    cur.unregister("_d")
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES "
                            "('pre', 'pre', 'pre', now()), ('post', 'post', 'post', now())")
                for f in feats:
                    cur.execute("INSERT INTO feature_defs VALUES ('bench', ?, 'continuous', 'spoiler', true, '')", [f])
        print(f"built a study of {n_pairs:,} pairs, {len(long):,} feature values in {time.perf_counter() - t0:.1f} s")
        with open_study(path) as st:
            stages = []
            last = [time.perf_counter()]

            def prog(s: str) -> None:
                now_ = time.perf_counter()
                stages.append((s, now_))

            t0 = time.perf_counter()
            res = fit_study(st, FitOptions(), progress=prog)
            t1 = time.perf_counter()
        marks = [("start", t0)] + stages + [("end", t1)]
        parts = ", ".join(f"{marks[i][0]} {marks[i + 1][1] - marks[i][1]:.2f} s" for i in range(1, len(marks) - 1))
        print(f"fit_study end to end: {t1 - t0:.2f} s ({parts}); {len(res.imprint)} imprint rows, "
              f"{len(res.coefficients)} other coefficients")
        from analysis.fit.study_fit import summary

        with open_study(path, read_only=True) as st:
            t0 = time.perf_counter()
            s = summary(st)
            print(f"summary (read-only, what `rmtui summary` prints): {time.perf_counter() - t0:.2f} s; "
                  f"{len(s['agreement'])} agreement rows, {len(s['imprint'])} imprint rows")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=160_800)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--statsmodels", action="store_true", help="also time statsmodels (slower)")
    ap.add_argument("--fit-study", action="store_true", help="time fit_study end to end on a built study")
    a = ap.parse_args()
    if a.fit_study:
        bench_fit_study(a.pairs, a.features)
        return
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
