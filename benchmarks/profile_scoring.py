"""Where the engine's time goes on a GPU: torch.profiler over one pass of the engine.

    python benchmarks/profile_scoring.py --from-config deberta-v3-large --device cuda --n 1024
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from-config", default="tiny-deberta")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from analysis.scoring import ScoreSettings, load_reward_model, random_model_folder, sample_texts

    with tempfile.TemporaryDirectory() as tmp:
        rm = load_reward_model(str(random_model_folder(args.from_config, Path(tmp) / "m")),
                               ScoreSettings(device=args.device), name=args.from_config)
    texts = sample_texts("all", args.n)
    rm.score_frame(texts)  # warm
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if rm.device == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        rm.score_frame(texts)
        if rm.device == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    print(f"{args.n} texts in {wall:.2f} s under the profiler ({args.n / wall:.0f} texts/s)")
    key = "cuda_time_total" if rm.device == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
