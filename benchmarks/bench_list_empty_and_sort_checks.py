"""What the list's new checks cost on a big study: non_null_counts (run once per sort and at open),
the empty-filter explanation (two counts per filter part, in a worker) and prompt_heads (once per page
of 200 rows). Prints seconds; usage: python benchmarks/bench_list_empty_and_sort_checks.py [N_PAIRS]."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(n: int) -> None:
    from analysis.store.browse import EntryFilter, non_null_counts, prompt_heads, sorted_ids
    from analysis.datasets.synth import make_synthetic_study
    from rmtui.screens.entry_list import explain_empty
    from rmtui.services import StudyService

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "study.duckdb"
        t = time.perf_counter()
        make_synthetic_study(p, n, seed=1)
        print(f"synthetic study of {n:,} pairs: {time.perf_counter() - t:.1f} s")
        svc = StudyService(p, read_only=True)
        for name, filt in (("all pairs", EntryFilter(regime=None)), ("resists", EntryFilter())):
            t = time.perf_counter()
            non_null_counts(svc.study, filt)
            print(f"non_null_counts({name}): {1000 * (time.perf_counter() - t):.0f} ms")
        t = time.perf_counter()
        sorted_ids(svc.study, EntryFilter(regime=None), ("theta", True))
        print(f"(for scale) sorted_ids(all pairs, theta desc): {1000 * (time.perf_counter() - t):.0f} ms")
        empty = EntryFilter(regime="reversed", subset="harmless-base", search="no such words")
        t = time.perf_counter()
        explain_empty(svc, empty)
        print(f"explain_empty(3 parts, with a search): {1000 * (time.perf_counter() - t):.0f} ms (in a worker)")
        ids = sorted_ids(svc.study, EntryFilter(regime=None))[:200]
        t = time.perf_counter()
        prompt_heads(svc.study, ids)
        print(f"prompt_heads(200 ids): {1000 * (time.perf_counter() - t):.0f} ms per page")
        svc.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000)
