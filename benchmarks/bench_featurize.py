"""Benchmark: heuristic features of every sample text (sample_data/hh-rlhf, 8,552 pairs = 17,104 texts).

Ingests the four sample files into a temporary study, then featurizes with 1 process and with
``--workers`` processes, and a cached rerun. Prints texts/s. Run from the repository root:

    python benchmarks/bench_featurize.py [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from analysis.features import feature_matrix, featurize_study
    from analysis.datasets.ingest import ingest
    from analysis.store import open_study

    with tempfile.TemporaryDirectory() as d:
        files = sorted((ROOT / "sample_data" / "hh-rlhf").glob("*.jsonl.gz"))
        mats = []
        runs = [("1 process", 1)] + ([(f"{args.workers} processes", args.workers)] if args.workers > 1 else [])
        for label, workers in runs:
            st = open_study(Path(d) / f"bench-{workers}.duckdb")
            for f in files:
                ingest(st, str(f))
            n_sides = st.scalar("SELECT count(*) FROM texts")
            t0, c0 = time.perf_counter(), time.process_time()
            r = featurize_study(st, "heuristic", workers=workers)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"heuristic, {label}: {n_sides:,} texts ({r.n_texts:,} distinct) featurized in {dt:.1f} s wall "
                  f"= {r.n_texts / dt:,.0f} texts/s, {r.n_values:,} values; this process's CPU {cpu:.1f} s; "
                  f"load average {load:.1f} on {os.cpu_count()} cores")
            t0 = time.perf_counter()
            r2 = featurize_study(st, "heuristic", workers=workers)
            print(f"  cached rerun: {r2.n_done} computed, {r2.n_cached:,} cached, {time.perf_counter() - t0:.2f} s")
            mats.append(feature_matrix(st).set_index("text_id").sort_index())
            st.close()
        if len(mats) == 2:
            same = mats[0].shape == mats[1].shape and bool(((mats[0] - mats[1]).abs() < 1e-12).all().all())
            print(f"  {args.workers}-process values identical to 1-process values: {same}")


if __name__ == "__main__":
    main()
