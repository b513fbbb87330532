"""Recipe sweep for the embedded pre-D / post-D models, selected on a validation split.

    python benchmarks/sweep_embedded.py --device cuda --out sweep.json      # what chose the shipped recipe
    python benchmarks/sweep_embedded.py --limit 60 --combos 3:64:1          # a CPU smoke run

For every combo (layers kept from all-MiniLM-L6-v2, max tokens, layers trained) it tokenizes every
text once, caches the frozen layers' output once, and then for every recipe trains pre-D on the
helpful subsets and post-D (pre-D further on all of D, harmless-base repeated per epoch) from the
same initial weights. The in-sample pairs are split again: a seeded 15 % of them ("val") is
never trained on here and is what a recipe is chosen by; the build's held-out 20 % ("held") is
printed too, but choosing by it would overfit the numbers the README reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RECIPES = {
    # name: (pre epochs, pre lr, pre oversample, post epochs, post lr, post oversample)
    "R0": (2.0, 2e-4, {}, 1.0, 3e-4, {"harmless-base": 4}),
    "R1": (2.0, 2e-4, {"helpful-online": 3}, 1.0, 3e-4, {"harmless-base": 4}),
    "R2": (3.0, 3e-4, {"helpful-online": 2}, 1.0, 3e-4, {"harmless-base": 4}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--combos", default="3:128:1,3:256:1,6:128:1,6:256:1,6:256:2",
                    help="KEEP:MAXLEN:TRAIN_LAYERS,... ")
    ap.add_argument("--recipes", default="R0,R1,R2")
    ap.add_argument("--limit", type=int, default=None, help="pairs per subset (smoke runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from analysis.models.embedded import HELPFUL
    from analysis.models.embedded_build import post_training_frame
    from analysis.models.base import load_base
    from analysis.models.train import (Encoder, FeatureCache, RewardNet, TrainSettings, pairwise_accuracy, text_rewards,
                                train_phase)
    from analysis.models.train_pairs import add_text_keys, heldout_pairs, mark_split, pairs_from_files

    dev = args.device
    if dev == "cuda":
        torch.set_default_device("cuda")
    frame = pairs_from_files(sorted((ROOT / "sample_data" / "hh-rlhf").glob("*.jsonl.gz")))
    if args.limit:
        frame = frame.groupby("subset", group_keys=False).head(args.limit).reset_index(drop=True)
    frame = mark_split(add_text_keys(frame), args.seed, 0.2)
    ins = frame[~frame["heldout"]]
    val_ids = heldout_pairs(ins["pair_id"], seed=args.seed + 1000, frac=0.15)
    frame["val"] = frame["pair_id"].isin(val_ids) & ~frame["heldout"]
    train = frame[~frame["heldout"] & ~frame["val"]]
    val, held = frame[frame["val"]], frame[frame["heldout"]]
    print(f"{len(frame)} pairs: train {len(train)}, val {len(val)}, held {len(held)}; device {dev}", flush=True)
    results = []
    encoders: dict[int, Encoder] = {}
    for combo in args.combos.split(","):
        keep, L, tl = (int(x) for x in combo.split(":"))
        t0 = time.perf_counter()
        st = TrainSettings(keep_layers=keep, max_length=L, train_layers=tl, seed=args.seed)
        torch.manual_seed(args.seed)
        model, tok = load_base("embedded:base", st)
        model.to(dev)
        net = RewardNet(model, tl)
        init = {k: v.detach().clone() for k, v in net.trainable_state().items()}
        if L not in encoders:
            enc = Encoder(tok, L)
            enc.add(list(frame["chosen_key"]) + list(frame["rejected_key"]),
                    list(frame["chosen_context"]) + list(frame["rejected_context"]),
                    list(frame["chosen_response"]) + list(frame["rejected_response"]))
            encoders[L] = enc
        enc = encoders[L]
        cache = FeatureCache(net, enc, "float32")
        cache.fill(list(enc.ids), 65536 if dev == "cuda" else 8192)
        print(f"\n== keep {keep}, max_length {L}, train {tl} layer(s): tokenized + cached in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

        def acc(split):
            keys = list(split["chosen_key"]) + list(split["rejected_key"])
            a = pairwise_accuracy(split, text_rewards(net, enc, keys, cache=cache,
                                                      token_budget=65536 if dev == "cuda" else 8192))
            return {s: round(float(x), 4) for s, x in zip(a["subset"], a["accuracy"])}

        for name in args.recipes.split(","):
            e1, lr1, os1, e2, lr2, os2 = RECIPES[name]
            with torch.no_grad():
                for k, p in net.trainable_state().items():
                    p.copy_(init[k])
            t = time.perf_counter()
            s1 = TrainSettings(**{**st.as_dict(), "epochs": e1, "lr": lr1})
            train_phase(net, enc, cache, post_training_frame(train, HELPFUL, os1)[3], s1, name="pre")
            pre = {"val": acc(val), "held": acc(held)}
            s2 = TrainSettings(**{**st.as_dict(), "epochs": e2, "lr": lr2, "seed": args.seed + 1})
            train_phase(net, enc, cache, post_training_frame(train, ("all",), os2)[3], s2, name="post")
            post = {"val": acc(val), "held": acc(held)}
            row = {"keep": keep, "max_length": L, "train_layers": tl, "recipe": name, "pre": pre, "post": post,
                   "seconds": round(time.perf_counter() - t, 1)}
            results.append(row)
            subs = ["harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"]
            short = ["harm", "hb", "ho", "hrs"]
            for split in ("val", "held"):
                print(f"{name} {split:4s} pre " + " ".join(f"{n} {pre[split].get(s, float('nan')):.3f}"
                                                            for n, s in zip(short, subs))
                      + " | post " + " ".join(f"{n} {post[split].get(s, float('nan')):.3f}" for n, s in zip(short, subs))
                      + (f"  ({row['seconds']} s)" if split == "held" else ""), flush=True)
        del cache, net, model
        if dev == "cuda":
            torch.cuda.empty_cache()
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
