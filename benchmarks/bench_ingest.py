"""Ingest the 8,552-pair sample into a fresh study and print the time (and the rate).

    python benchmarks/bench_ingest.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.datasets.readers import Pair, read_pairs  # noqa: E402
from analysis.datasets.ingest import ingest  # noqa: E402
from analysis.store import open_study  # noqa: E402


def main() -> None:
    files = sorted((ROOT / "sample_data" / "hh-rlhf").glob("*.jsonl.gz"))
    t0 = time.perf_counter()
    n_read = sum(isinstance(x, Pair) for f in files for x in read_pairs(f))
    t_read = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with open_study(Path(d) / "bench.duckdb") as st:
            added = sum(ingest(st, str(f)).n_added for f in files)
        t_ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        with open_study(Path(d) / "bench.duckdb") as st:
            again = sum(ingest(st, str(f)).n_added for f in files)
        t_again = time.perf_counter() - t0
    print(f"read+split only : {n_read:,} pairs in {t_read:.2f} s ({n_read / t_read:,.0f} pairs/s)")
    print(f"ingest (fresh)  : {added:,} pairs in {t_ingest:.2f} s ({added / t_ingest:,.0f} pairs/s)")
    print(f"ingest (again)  : {again:,} added in {t_again:.2f} s (idempotent)")


if __name__ == "__main__":
    main()
