"""Ingest N A/B-with-label rows (default 1,000,000) from Parquet through the SQL path and print rows/s.

    python benchmarks/bench_ingest_sql.py [N] [--fresh-only]

Prints wall rows/s and rows per CPU-second (the machine is often shared: the CPU figure is the one that
compares across runs).

The Parquet file is written first (not timed): prompt, response_a, response_b, winner (model_a /
model_b / tie, 10 % ties). Timed: ``ingest(study, "sql:SELECT ... FROM read_parquet(...)")`` into a fresh
study (query, label mapping, pair ids, committed chunks), then the same again (idempotent, adds 0).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.datasets.readers import ReadOptions  # noqa: E402
from analysis.datasets.ingest import ingest  # noqa: E402
from analysis.datasets.shapes import parse_map  # noqa: E402
from analysis.store import open_study  # noqa: E402


def write_parquet(path: Path, n: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    idx = np.arange(n)
    w = rng.choice(np.array(["model_a", "model_b", "tie"]), size=n, p=[0.45, 0.45, 0.10])
    words = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"])
    tail = words[rng.integers(0, len(words), n)]
    table = pa.table({
        "prompt": pa.array([f"question {i}: how does {t} work?" for i, t in zip(idx, tail)]),
        "response_a": pa.array([f"answer A to {i}, about {t}." for i, t in zip(idx, tail)]),
        "response_b": pa.array([f"a different answer B to {i}." for i in idx]),
        "winner": pa.array(w),
    })
    pq.write_table(table, path, row_group_size=100_000)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1_000_000
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "ab.parquet"
        t0 = time.perf_counter()
        write_parquet(src, n)
        print(f"wrote {n:,} rows to Parquet in {time.perf_counter() - t0:.1f} s (not timed below)", flush=True)
        sql = (f"SELECT prompt, response_a AS a, response_b AS b, winner AS label "
               f"FROM read_parquet('{src}')")
        mapping, shape = parse_map(["prompt=prompt,a=a,b=b,label=label"], label="a=model_a,b=model_b,tie=tie")
        opts = ReadOptions(mapping=mapping, shape=shape)
        t0, c0 = time.perf_counter(), time.process_time()
        with open_study(Path(d) / "bench.duckdb") as st:
            res = ingest(st, "sql:" + sql, opts)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"ingest --sql (fresh): {res.n_read:,} rows read, {res.n_added:,} pairs added, {res.n_ties:,} ties, "
              f"in {dt:.1f} s wall = {res.n_read / dt:,.0f} rows/s ({dc:.1f} s CPU, all threads: "
              f"{res.n_read / dc:,.0f} rows per CPU-second; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
              flush=True)
        if "--fresh-only" in sys.argv:
            return
        t0, c0 = time.perf_counter(), time.process_time()
        with open_study(Path(d) / "bench.duckdb") as st:
            again = ingest(st, "sql:" + sql, opts)
        dt2, dc2 = time.perf_counter() - t0, time.process_time() - c0
        print(f"ingest --sql (again): {again.n_added:,} added in {dt2:.1f} s wall = {again.n_read / dt2:,.0f} rows/s "
              f"({again.n_read / dc2:,.0f} rows per CPU-second; idempotent)", flush=True)


if __name__ == "__main__":
    main()
