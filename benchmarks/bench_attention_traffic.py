"""Memory traffic of the engine's forward, op by op: a device-independent view of what a GPU pays for.

    python benchmarks/bench_attention_traffic.py            # deberta-v3-large widths, 4 layers, bf16, 16 texts
    python benchmarks/bench_attention_traffic.py --layers 24   # the whole shape (about 20 min on 2 cores)

On a GPU, DeBERTa's eager forward at hh-rlhf lengths is bound by memory traffic outside the matrix
products (benchmarks/results/h100-2026-11-27/profile.txt). This runs the engine on the CPU under a
``TorchDispatchMode`` that adds up, for every aten op that moves data, the bytes of its tensor inputs
(broadcast dimensions counted once) and outputs, and prints them per text, split into matrix-product/attention
kernels and the rest, for rmtui's forward, with transformers' attention, and transformers' whole
forward (same batches, same weights). Views cost nothing. Bytes are an upper bound for an eager GPU kernel
(caches can serve repeats) and say nothing of coalescing: the p2c view is read with a stride.

2 CPU cores, 4 layers, 16 texts (bf16): rmtui 185 MB per text, transformers' attention with rmtui's
last layer 372 MB (2.01x), transformers' whole forward 480 MB (2.60x).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MATMUL = ("linear", "matmul", "mm", "addmm", "bmm", "baddbmm", "einsum", "scaled_dot_product", "_scaled_dot_product")


def _tensor_bytes(t) -> int:
    """Bytes a kernel touches for ``t``: broadcast (stride 0) dimensions once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size()


def traffic(fn):
    """Run ``fn()`` and return {op name: [calls, bytes read, bytes written]}."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            ins = [t for t in tree_flatten((args, {k: v for k, v in kwargs.items() if k != "out"}))[0]
                   if isinstance(t, torch.Tensor)]
            mutable = func._schema.is_mutable
            ptrs = {t.untyped_storage().data_ptr() for t in ins if t.numel()}
            if not mutable and outs and all(t.untyped_storage().data_ptr() in ptrs for t in outs):
                return out  # a view: no data moves
            if func.__name__.startswith(("empty", "detach", "lift_fresh", "_local_scalar_dense")):
                return out
            name = func.__name__.split(".")[0]
            c = counts[name]
            c[0] += 1
            c[2] += sum(_tensor_bytes(t) for t in outs)
            if name == "embedding":  # the rows looked up, not the table
                c[1] += sum(_tensor_bytes(t) for t in outs) + _tensor_bytes(args[1])
            elif not name.startswith("new_"):  # new_zeros & co. read nothing
                # an in-place op's mutated input is also its output: read (if it is read) and written
                c[1] += sum(_tensor_bytes(t) for t in ins if not (name == "copy_" and t is args[0]))
            return out

    with Count():
        fn()
    return counts


def report(label: str, counts, n_texts: int, layers: int) -> float:
    """Print the traffic per text (and per layer); return MB per text."""
    groups = {"matmul/attention": [0, 0, 0], "other": [0, 0, 0]}
    for name, (calls, r, w) in counts.items():
        g = groups["matmul/attention" if name.startswith(MATMUL) else "other"]
        g[0] += calls; g[1] += r; g[2] += w  # noqa: E702
    mb = sum(r + w for _, r, w in groups.values()) / 1e6 / n_texts
    print(f"\n== {label}: {mb:.0f} MB per text read + written ({mb / layers:.1f} per layer)")
    for g, (calls, r, w) in groups.items():
        print(f"  {g:18s} {calls / layers:6.0f} ops/layer  {(r + w) / 1e6 / n_texts:7.1f} MB/text")
    for name, (calls, r, w) in sorted(counts.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))[:10]:
        print(f"    {name:32s} {calls:5d} calls  read {r / 1e6 / n_texts:6.1f}  written {w / 1e6 / n_texts:6.1f} MB/text")
    return mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from-config", default="deberta-v3-large")
    ap.add_argument("--layers", type=int, default=4, help="layers (0: the shape's own); the last computes the "
                    "first token only in rmtui's forward")
    ap.add_argument("--n", type=int, default=16, help="texts (hh-rlhf, all four sample subsets)")
    ap.add_argument("--dtype", default="bf16")
    args = ap.parse_args()

    from analysis.models.deberta_attention import unpatched
    from analysis.scoring import RANDOM_SHAPES, ScoreSettings, load_reward_model, random_model_folder, sample_texts

    layers = args.layers or RANDOM_SHAPES[args.from_config]["num_hidden_layers"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = random_model_folder(args.from_config, Path(tmp) / "m", layers=layers)
        rm = load_reward_model(str(folder), ScoreSettings(device="cpu", dtype=args.dtype), name=args.from_config)
    texts = sample_texts("all", args.n)
    rm.score_frame(texts.head(4))
    print(f"{args.from_config} widths, {layers} layers, {rm.dtype}, {len(texts)} hh-rlhf texts, "
          f"token budget {rm.runner.budget}")
    mb = {}
    for label, only in (("rmtui forward", False), ("transformers' attention (rmtui's last layer)", "attention"),
                        ("transformers' forward", None)):
        with unpatched(rm.model, only=only) if only is not False else contextlib.nullcontext():
            mb[label] = report(label, traffic(lambda: rm.score_frame(texts)), len(texts), layers)
    base = mb["rmtui forward"]
    print("\n" + "; ".join(f"{k}: {v / base:.2f}x rmtui's bytes" for k, v in mb.items() if v != base))


if __name__ == "__main__":
    main()
