"""Long fuzz run of the readers and the sanitizer: the properties of tests/analysis/test_fuzz.py, many examples.

    PYTHONPATH=. python -m benchmarks.fuzz_readers --examples 20000 [--minutes 10]

Prints, per property, the examples run, the pairs and issues the readers produced, the failures
(a failure stops that property and prints its minimal example) and the seconds. Exit 1 on a failure.
"""

from __future__ import annotations

import argparse
import sys
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.helpers import fuzz

PROPERTIES = {
    "jsonl lines (good/bad/bytes/deep, .gz or not)": (
        (st.lists(fuzz.jsonl_line, min_size=1, max_size=12), st.booleans()), lambda l, gz: fuzz.check_jsonl(l, gz)),
    "random bytes under every reader's name": (
        (st.binary(max_size=600), st.sampled_from([".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz",
                                                   ".tsv", ".parquet"])), fuzz.check_random_file),
    "truncated .gz": ((st.lists(fuzz.good_record(), min_size=1, max_size=30), st.floats(0.0, 1.0)),
                      fuzz.check_truncated_gz),
    "random column maps (csv/jsonl/parquet)": (
        (st.lists(fuzz.identifier, min_size=2, max_size=5, unique_by=str.lower), st.lists(fuzz.good_record(), max_size=6),
         st.sampled_from(["csv", "jsonl", "parquet"])), fuzz.check_csv_map),
    "ingest into a study (each good pair once)": ((st.lists(fuzz.jsonl_line, min_size=1, max_size=10),),
                                                  fuzz.check_ingest_once),
    "visible()": ((fuzz.any_text,), lambda s: (fuzz.check_visible(s), (0, 0))[1]),
    "CLI console": ((fuzz.any_text,), lambda s: (fuzz.check_console(s), (0, 0))[1]),
}
# the study property opens a DuckDB file per example: a tenth of the examples
SHARE = {"ingest into a study (each good pair once)": 0.1, "random column maps (csv/jsonl/parquet)": 0.5}


def run(name: str, n: int, deadline_s: float, batch: int = 250) -> dict:
    """``n`` examples of one property, in batches of ``batch`` (each a fresh random run), until ``n`` or
    the deadline (hypothesis itself has no time limit)."""
    strategies, check = PROPERTIES[name]
    stats = {"examples": 0, "pairs": 0, "issues": 0, "failed": 0}
    t0 = time.perf_counter()

    def one(args):
        out = check(*args)
        stats["examples"] += 1
        if isinstance(out, tuple):
            stats["pairs"] += out[0]
            stats["issues"] += out[1]

    while stats["examples"] < n and time.perf_counter() - t0 < deadline_s:
        k = min(batch, n - stats["examples"])
        prop = settings(max_examples=k, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
                        suppress_health_check=list(HealthCheck))(given(st.tuples(*strategies))(one))
        before = stats["examples"]
        try:
            prop()
        except Exception as e:  # a property failed: hypothesis has shrunk and printed the example
            stats["failed"] = 1
            print(f"  FAILED: {type(e).__name__}: {str(e)[:800]}", file=sys.stderr)
            break
        if stats["examples"] == before:  # pragma: no cover - nothing generated
            break
    stats["seconds"] = time.perf_counter() - t0
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=20_000, help="examples per property (default 20,000)")
    ap.add_argument("--minutes", type=float, default=None, help="stop each property after this many minutes")
    ap.add_argument("--only", default=None, help="run the properties whose name contains this")
    a = ap.parse_args()
    deadline = a.minutes * 60 if a.minutes else float("inf")
    total, failed = 0, 0
    print(f"{'property':48} {'examples':>9} {'pairs':>9} {'issues':>9} {'failed':>6} {'s':>7}")
    for name in PROPERTIES:
        if a.only and a.only not in name:
            continue
        n = max(1, int(a.examples * SHARE.get(name, 1.0)))
        s = run(name, n, deadline)
        total += s["examples"]
        failed += s["failed"]
        print(f"{name:48} {s['examples']:>9,} {s['pairs']:>9,} {s['issues']:>9,} {s['failed']:>6} {s['seconds']:>7.1f}",
              flush=True)
    print(f"total: {total:,} examples, {failed} properties failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
