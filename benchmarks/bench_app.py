"""Benchmark of ``rmtui explore`` on a large synthetic study (default 160,000 pairs).

Prints: time to generate the study, time to first paint of the entry list, and per-key times of 200
cursor moves and 20 page-downs, on the default filter (resisting pairs) and on all pairs. Targets:
first paint < 0.5 s, each key < 50 ms.

    python benchmarks/bench_app.py [--pairs 160000] [--study PATH] [--keep]

Keys are sent with Textual's Pilot in a headless app of 80x24. Two times per key: wall, from posting
the key until Pilot sees the app idle with the screen updated (this includes Pilot's own idle polling,
sleeps of a few ms), and cpu, the process time spent meanwhile (the app's work: handling the key,
queries, rendering; robust to other load on a shared machine).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _fmt(ts: list[float]) -> str:
    ms = [t * 1000 for t in ts]
    ms_sorted = sorted(ms)
    p95 = ms_sorted[int(0.95 * (len(ms) - 1))]
    return f"mean {statistics.mean(ms):6.1f} ms  median {statistics.median(ms):6.1f}  p95 {p95:6.1f}  max {max(ms):6.1f}"


async def run(path: Path, size=(80, 24)) -> dict:
    from rmtui.app import RmtuiApp
    from rmtui.widgets.entry_list import EntryList

    out = {}
    t0 = time.perf_counter()
    app = RmtuiApp(path, keymap=path.parent / "none.toml")
    async with app.run_test(size=size) as pilot:
        # first paint: until the list exists, has its count and has rendered its visible lines
        while True:
            await pilot.pause()
            try:
                el = app.screen.query_one(EntryList)
            except Exception:
                if app.screen.__class__.__name__ in ("OpenFailedScreen", "ErrorDialog"):
                    raise SystemExit(f"cannot open the study: {getattr(app.screen, 'message', '')}")
                continue
            if el.total and el.lines_rendered:
                break
        out["first_paint_app"] = time.perf_counter() - t0
        # the list's own work for a first paint: count, first page, visible strips
        t = time.perf_counter()
        el.load(el.filt, now=True)  # here, not in the worker a filter change uses
        el._pages.clear()
        el._strips.clear()
        for y in range(el.size.height):
            el.render_line(y)
        out["first_paint_list"] = time.perf_counter() - t
        # Pilot's own cost per key: a key bound to nothing (the app does no work for it)
        wall, cpu = [], []
        for _ in range(50):
            t, c = time.perf_counter(), time.process_time()
            await pilot.press("f12")
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out["baseline: unbound key (wall)"] = wall
        out["baseline: unbound key (cpu)"] = cpu
        for label, keys in (("resisting", None), ("all pairs", "x")):
            if keys:
                t = time.perf_counter()
                await pilot.press(keys)
                await app.workers.wait_for_complete()  # the reload's worker, then the message it posts
                await pilot.pause()
                out[f"{label}: filter change"] = [time.perf_counter() - t]
            out[f"{label}: rows"] = el.total
            for name, keys in (("200 cursor moves", ["down"] * 200), ("20 page-downs", ["pagedown"] * 20),
                               ("end/home/end", ["end", "home", "end"])):
                wall, cpu = [], []
                for k in keys:
                    t, c = time.perf_counter(), time.process_time()
                    await pilot.press(k)
                    wall.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                out[f"{label}: {name} (wall)"] = wall
                out[f"{label}: {name} (cpu)"] = cpu
        await pilot.press("q")
    return out


def main() -> None:
    if os.environ.get("RMTUI_BENCH_TRACE"):
        faulthandler.dump_traceback_later(float(os.environ["RMTUI_BENCH_TRACE"]), exit=True)
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=160_000)
    ap.add_argument("--study", type=Path, default=None, help="reuse (or create) this study file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from analysis.datasets.synth import make_synthetic_study

    tmp = None
    if args.study is None:
        tmp = tempfile.TemporaryDirectory()
        args.study = Path(tmp.name) / "bench.duckdb"
    if not args.study.exists():
        res = make_synthetic_study(args.study, args.pairs, seed=args.seed)
        print(f"synthetic study: {res.n_pairs:,} pairs generated in {res.seconds:.2f} s ({args.study})")
    else:
        print(f"synthetic study: reusing {args.study}")
    out = asyncio.run(run(args.study))
    print(f"first paint (app start to list drawn, Pilot): {out.pop('first_paint_app') * 1000:7.1f} ms")
    print(f"first paint (list: count + first page + visible lines): {out.pop('first_paint_list') * 1000:7.1f} ms")
    for k, v in out.items():
        if isinstance(v, list):
            print(f"{k:32s} {_fmt(v)}")
        else:
            print(f"{k:32s} {v:,}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
