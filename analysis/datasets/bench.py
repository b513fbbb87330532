"""``rmtui bench ingest``: rows per second of ingest, per source kind, against the record path.

N synthetic A/B-with-label records (prompt, response_a, response_b, winner: model_a / model_b / tie,
10 % ties, every text distinct) are written once as JSON lines and as Parquet (not timed). Timed, each
into a fresh study: the JSON lines, the Parquet file and ``sql:SELECT ... FROM read_parquet(...)``
through the columnar pass; then the same JSON lines through the record path (``columnar=False``, the
baseline, on the first ``baseline_n`` records: it takes minutes for a million), in the same process.
Per stage: wall seconds, rows/s, CPU seconds of the process (all threads) and its peak RSS over the
stage (Linux: the high-water mark is reset before each stage).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

LABEL = "a=model_a,b=model_b,tie=tie"
MAP = "prompt=prompt,a=response_a,b=response_b,label=winner"


@dataclass
class Stage:
    name: str
    rows: int
    added: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float | None
    ties: int = 0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class IngestBench:
    n: int
    stages: list[Stage] = field(default_factory=list)
    write_seconds: float = 0.0
    cores: int = os.cpu_count() or 1
    load: float | None = None


def synthetic_records(n: int, seed: int = 0):
    """``n`` A/B records with distinct texts (a dict each), deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    winners = rng.choice(np.array(["model_a", "model_b", "tie"]), size=n, p=[0.45, 0.45, 0.10]).tolist()
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    topic = rng.integers(0, len(words), n).tolist()
    for i in range(n):
        w = words[topic[i]]
        yield {"prompt": f"question {i}: how does {w} work, and why?",
               "response_a": f"answer A to {i}: {w} works by the usual mechanism.",
               "response_b": f"a different answer B to {i}, about {w}.", "winner": winners[i]}


def write_sources(n: int, folder: Path) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl, parquet = folder / "bench-train.jsonl", folder / "bench-train.parquet"
    chunk: list[dict] = []
    writer = None
    with open(jsonl, "w", encoding="utf-8") as out:
        for rec in synthetic_records(n):
            out.write(json.dumps(rec) + "\n")
            chunk.append(rec)
            if len(chunk) >= 100_000:
                t = pa.Table.from_pylist(chunk)
                writer = writer or pq.ParquetWriter(parquet, t.schema)
                writer.write_table(t)
                chunk = []
    if chunk:
        t = pa.Table.from_pylist(chunk)
        writer = writer or pq.ParquetWriter(parquet, t.schema)
        writer.write_table(t)
    if writer is not None:
        writer.close()
    return jsonl, parquet


def _reset_peak() -> None:
    try:  # Linux: "5" resets the peak RSS (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stage(name: str, folder: Path, spec: str, *, columnar: bool = True) -> Stage:
    from analysis.datasets.ingest import ingest
    from analysis.datasets.readers import ReadOptions
    from analysis.datasets.shapes import parse_map
    from analysis.store import open_study

    mapping, shape = parse_map([MAP], label=LABEL)
    study = folder / f"{name.replace(' ', '-')}.duckdb"
    _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    with open_study(study) as st:
        res = ingest(st, spec, ReadOptions(mapping=mapping, shape=shape), columnar=columnar)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    for f in folder.glob(f"{study.name}*"):
        f.unlink()
    return Stage(name, res.n_read, res.n_added, dt, dc, _peak_mb(), res.n_ties)


def bench_ingest(n: int, *, baseline_n: int | None = 20_000, kinds=("jsonl", "parquet", "sql"),
                 progress: Callable[[str], None] | None = None) -> IngestBench:
    out = IngestBench(n)
    with tempfile.TemporaryDirectory(prefix="rmtui-bench-ingest-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        jsonl, parquet = write_sources(n, folder)
        out.write_seconds = time.perf_counter() - t0
        specs = {"jsonl": str(jsonl), "parquet": str(parquet),
                 "sql": f"sql:SELECT prompt, response_a, response_b, winner FROM read_parquet('{parquet}')"}
        for kind in kinds:
            if progress:
                progress(f"ingest {kind}")
            out.stages.append(_stage(kind, folder, specs[kind]))
        if baseline_n:
            m = min(baseline_n, n)
            base = folder / "base-train.jsonl"
            with open(jsonl, encoding="utf-8") as src, open(base, "w", encoding="utf-8") as dst:
                for i, line in enumerate(src):
                    if i >= m:
                        break
                    dst.write(line)
            if progress:
                progress("ingest jsonl, record path (baseline)")
            out.stages.append(_stage("record path", folder, str(base), columnar=False))
    try:
        out.load = os.getloadavg()[0]
    except OSError:
        pass
    return out
