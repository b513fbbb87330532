"""A scoring job sharing its study with the app: throughput alone, with the app open, with the app
refreshing every second; and what one open/close of the study costs.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/bench_shared_study.py [--pairs 400] [--chunk-size 64]

The job is a real ``rmtui score`` subprocess (the tiny real BERT RM of tests/helpers/tiny_rm.py unless
``--model``); the app is the real Textual app (``App.run_test``) in this process on the same file:

- ``alone``: no app;
- ``app idle``: the app open on the list, nobody pressing keys (its 1 s watch reloads the list when
  the job committed, as in real use);
- ``app refresh 1 s``: the list reloaded every second whether or not anything changed (its order
  query and visible rows: the heaviest thing an idle user's app does);
- ``app elsewhere``: the control, the app refreshing every second on *another copy* of the study:
  what the app's CPU use alone costs the job on this machine, with no lock shared.

texts/s is the job's own figure (scored texts over the scoring loop's time, model load left out).
A tiny model with small chunks is the worst case for sharing: each chunk's compute is short, so the
fixed cost of opening, committing and closing the file per chunk weighs most.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _env(root: Path = ROOT) -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = str(root)
    env["COLUMNS"] = "200"
    return env


def _job(study: Path, model: str, chunk: int, device: str, root: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rmtui", "score", "-s", str(study), "-m", model, "--role", "pre",
                             "--device", device, "--chunk-size", str(chunk), "--name", "bench"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(root))


def _rate(out: str) -> float:
    m = re.search(r"([\d,.]+) texts/s", out)
    if not m:
        raise SystemExit("the job printed no rate:\n" + out[-2000:])
    return float(m.group(1).replace(",", ""))


def run_alone(study: Path, model: str, chunk: int, device: str, root: Path = ROOT) -> tuple[float, str]:
    p = _job(study, model, chunk, device, root)
    out, _ = p.communicate(timeout=3600)
    if p.returncode:
        raise SystemExit(out[-2000:])
    return _rate(out), out


async def run_with_app(study: Path, model: str, chunk: int, device: str, refresh: float | None,
                       app_study: Path | None = None) -> tuple[float, dict]:
    """The job on ``study``, the app open on ``app_study`` (default: the same file)."""
    from rmtui.app import RmtuiApp
    from rmtui.screens.entry_list import ListScreen

    app_study = app_study or study
    app = RmtuiApp(app_study, keymap=app_study.parent / "no-keymap.toml")
    stats = {"reloads": 0, "reload_s": 0.0}
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(5):
            await pilot.pause()
        assert isinstance(app.screen, ListScreen), app.screen
        await pilot.press("x")  # all pairs: the largest list
        p = _job(study, model, chunk, device)
        last = time.monotonic()
        while p.poll() is None:
            await pilot.pause(0.05)
            if refresh is not None and time.monotonic() - last >= refresh:
                last = time.monotonic()
                t0 = time.perf_counter()
                app.watch_study(force=True)
                stats["reload_s"] += time.perf_counter() - t0
                stats["reloads"] += 1
        out = p.stdout.read()
        p.wait()
        stats["opens"] = app.service.study.n_opens
        stats["lock_waits"] = app.service.study.n_lock_waits
        stats["watch_reloads"] = app.n_watch_reloads
        await app.action_quit()
    if p.returncode:
        raise SystemExit(out[-2000:])
    m = re.search(r"waited ([\d.]+) s in all for other processes \((\d+) retries", out)
    stats["job_wait_s"] = float(m.group(1)) if m else 0.0
    return _rate(out), stats


def open_close_costs(study: Path, rows: int, n: int = 20) -> dict[str, float]:
    """Milliseconds per open+close (read-only, read-write) and per chunk write with and without it."""
    import duckdb
    import pandas as pd

    out: dict[str, float] = {}
    for label, ro in (("open+close read-only", True), ("open+close read-write", False)):
        t0 = time.perf_counter()
        for _ in range(n):
            duckdb.connect(str(study), read_only=ro).close()
        out[label] = (time.perf_counter() - t0) / n * 1000
    df = pd.DataFrame({"model_id": "bench-cost", "text_id": [f"t{i}" for i in range(rows * n)],
                       "reward": 0.0, "truncated": False, "n_tokens": 1})
    con = duckdb.connect(str(study))
    t0 = time.perf_counter()
    for i in range(n):
        part = df.iloc[i * rows:(i + 1) * rows]
        con.execute("BEGIN")
        con.execute("INSERT INTO scores (model_id, text_id, reward, truncated, n_tokens) SELECT * FROM part")
        con.execute("COMMIT")
    out[f"commit {rows} scores, connection kept"] = (time.perf_counter() - t0) / n * 1000
    con.execute("DELETE FROM scores WHERE model_id = 'bench-cost'")
    con.close()
    t0 = time.perf_counter()
    for i in range(n):
        part = df.iloc[i * rows:(i + 1) * rows]
        con = duckdb.connect(str(study))
        con.execute("BEGIN")
        con.execute("INSERT INTO scores (model_id, text_id, reward, truncated, n_tokens) SELECT * FROM part")
        con.execute("COMMIT")
        con.close()
    out[f"open + commit {rows} scores + close"] = (time.perf_counter() - t0) / n * 1000
    con = duckdb.connect(str(study))
    con.execute("DELETE FROM scores WHERE model_id = 'bench-cost'")
    con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=400, help="synthetic pairs (about 2 texts each)")
    ap.add_argument("--chunk-size", type=int, default=64, help="texts per committed chunk of the job")
    ap.add_argument("--model", default=None, help="model folder (default: the tiny real RM of the tests)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=1, help="runs per scenario (the median is printed)")
    ap.add_argument("--baseline-root", type=Path, default=None,
                    help="a checkout of rmtui before shared studies (e.g. git archive 319bf74): its job alone, "
                         "holding the file throughout, is printed as 'alone, old code'")
    args = ap.parse_args()

    from analysis.datasets.synth import make_synthetic_study
    from analysis.store import open_study

    with tempfile.TemporaryDirectory(prefix="rmtui-bench-shared-") as tmp:
        tmp_p = Path(tmp)
        model = args.model
        if model is None:
            from tests.helpers.tiny_rm import make_tiny_rm

            model = str(make_tiny_rm(tmp_p / "tiny-rm"))
        template = tmp_p / "template.duckdb"
        make_synthetic_study(template, args.pairs, seed=0, with_models=False)
        with open_study(template, read_only=True) as st:
            n_texts = int(st.scalar("SELECT count(DISTINCT text_id) FROM texts"))
        print(f"{args.pairs} pairs, {n_texts} texts, chunk {args.chunk_size} texts "
              f"({-(-n_texts // args.chunk_size)} commits), model {Path(model).name}, device {args.device}, "
              f"{os.cpu_count()} CPUs")

        def fresh(name: str) -> Path:
            d = tmp_p / name
            d.mkdir(exist_ok=True)
            p = d / "study.duckdb"
            shutil.copy(template, p)
            return p

        costs = open_close_costs(fresh("costs"), args.chunk_size)
        for k, v in costs.items():
            print(f"  {k:<40} {v:8.1f} ms")

        results: dict[str, list[float]] = {"alone": [], "app elsewhere": [], "app idle": [], "app refresh 1 s": []}
        if args.baseline_root:
            results["alone, old code"] = []
        extra: dict[str, dict] = {}
        for r in range(args.repeat):
            results["alone"].append(run_alone(fresh(f"alone{r}"), model, args.chunk_size, args.device)[0])
            if args.baseline_root:
                results["alone, old code"].append(run_alone(fresh(f"old{r}"), model, args.chunk_size, args.device,
                                                            args.baseline_root.resolve())[0])
            # control: the app open and refreshing every second on another copy: its CPU, no shared lock
            rate, st = asyncio.run(run_with_app(fresh(f"else{r}"), model, args.chunk_size, args.device, 1.0,
                                                app_study=fresh(f"other{r}")))
            results["app elsewhere"].append(rate)
            extra["app elsewhere"] = st
            rate, st = asyncio.run(run_with_app(fresh(f"idle{r}"), model, args.chunk_size, args.device, None))
            results["app idle"].append(rate)
            extra["app idle"] = st
            rate, st = asyncio.run(run_with_app(fresh(f"refresh{r}"), model, args.chunk_size, args.device, 1.0))
            results["app refresh 1 s"].append(rate)
            extra["app refresh 1 s"] = st
        med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
        base = med["alone"]
        print(f"{'scenario':<18} {'texts/s':>9} {'ratio':>7}  runs")
        for k, v in med.items():
            note = ""
            if k in extra:
                e = extra[k]
                note = (f"  job waited {e['job_wait_s']:.1f} s; app: {e['opens']} opens, {e['lock_waits']} lock "
                        f"retries, {e['watch_reloads']} reloads on a commit")
                if e.get("reloads"):
                    note += f", {e['reloads']} forced reloads ({e['reload_s'] / e['reloads'] * 1000:.0f} ms each)"
            print(f"{k:<18} {v:9.1f} {v / base:7.2f}  {', '.join(f'{x:.1f}' for x in results[k])}{note}")


if __name__ == "__main__":
    main()
