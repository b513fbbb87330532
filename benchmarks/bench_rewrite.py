"""Rule rewrites and rewrite similarity on real hh-rlhf responses: texts per second.

    python benchmarks/bench_rewrite.py [N]

Prints: rule rewrites/s per perturbation (pure Python), and all-MiniLM-L6-v2 similarity pairs/s
(batched, length-sorted) against a naive one-pair-at-a-time loop on the first 64 pairs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from analysis.datasets.readers import Pair, read_pairs  # noqa: E402
from analysis.rewrite import RULE_PERTURBATIONS, make_rewriter  # noqa: E402
from analysis.features.similarity import get_embedder, similarity  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    f = ROOT / "sample_data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    resp = [x.chosen_response for x in read_pairs(f) if isinstance(x, Pair)][:n]
    print(f"{len(resp):,} real responses, mean {np.mean([len(r.split()) for r in resp]):.0f} words")
    new = {}
    for p in RULE_PERTURBATIONS:
        rw = make_rewriter(f"rules:{p}")
        t0 = time.perf_counter()
        new[p] = [rw.rewrite("", r, np.random.default_rng(i)).new_response for i, r in enumerate(resp)]
        dt = time.perf_counter() - t0
        changed = sum(a != b for a, b in zip(resp, new[p]))
        print(f"rules:{p:<16} {len(resp) / dt:>9,.0f} texts/s   changed {changed / len(resp):6.1%}")
    t0 = time.perf_counter()
    get_embedder()
    print(f"similarity model load: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    sims = similarity(resp, new["hedging"])
    dt = time.perf_counter() - t0
    print(f"similarity batched : {len(resp) / dt:,.0f} pairs/s  (median {np.median(sims):.3f}, "
          f"below 0.8: {(sims < 0.8).mean():.1%})")
    k = min(64, len(resp))
    t0 = time.perf_counter()
    for a, b in zip(resp[:k], new["hedging"][:k]):
        similarity([a], [b])
    dt1 = time.perf_counter() - t0
    print(f"similarity naive   : {k / dt1:,.0f} pairs/s (one pair per call) -> batched is "
          f"{(len(resp) / dt) / (k / dt1):.1f}x")
    for p in RULE_PERTURBATIONS:
        s = similarity(resp[:200], new[p][:200])
        print(f"  similarity after {p:<16} median {np.median(s):.3f}  below 0.8: {(s < 0.8).mean():6.1%}")


if __name__ == "__main__":
    main()
