"""``rmtui bench demo``: the demo's steps timed with the shipped precomputed results and, as the
baseline in the same process, with every step computed here; then the two studies' figures compared.

The comparison is the point as much as the time: every number of ``rmtui summary`` of both studies
(agreement, intervals, regimes, imprint coefficients, robustness, ...) is read and the largest
difference printed, so a faster demo that changed a result would show it.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.pipeline.config import RunConfig, load_config


@dataclass
class DemoRun:
    label: str
    seconds: float
    steps: list[tuple[str, float, str]] = field(default_factory=list)   # (step, seconds, message)
    agreement: dict[str, float] = field(default_factory=dict)         # role -> agreement (all pairs)
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class DemoBench:
    pairs: int
    runs: list[DemoRun]
    n_compared: int = 0
    max_abs_diff: float = 0.0
    worst: str = ""
    n_differing_counts: int = 0


def _leaves(obj: Any, prefix: str = "") -> dict[str, float]:
    """Every finite number of a summary, keyed by its path (lists of records keyed by their text fields)."""
    out: dict[str, float] = {}
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)):
        if math.isfinite(float(obj)):
            out[prefix] = float(obj)
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("fit", "study", "fit_id", "created_at", "seconds", "library_warnings", "models"):
                continue
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            key = str(i)
            if isinstance(v, dict):
                names = [str(v[k]) for k in sorted(v) if isinstance(v[k], str) and k not in ("fit_id", "created_at")]
                key = "/".join(names) or key
            out.update(_leaves(v, f"{prefix}[{key}]"))
    return out


def _figures(study: Path) -> tuple[dict[str, float], dict[str, float]]:
    from analysis.fit.study_fit import summary
    from analysis.store import open_study

    with open_study(study, read_only=True) as st:
        data = summary(st)
    agree = {r["role"]: float(r["agreement"]) for r in data.get("agreement_stats") or []
             if r.get("slice") == "all" and r.get("agreement") is not None}
    return agree, _leaves({k: v for k, v in data.items() if k not in ("missing", "stale")})


def _limited(cfg: RunConfig, pairs: int) -> RunConfig:
    return dataclasses.replace(cfg, data=[dataclasses.replace(d, limit=min(d.limit or pairs, pairs)) for d in cfg.data])


def bench_demo(config: str | Path, pairs: int = 600, *, baseline: bool = True, folder: str | Path | None = None,
               progress=None) -> DemoBench:
    """Build the demo study from ``config`` (the first ``pairs`` of each source) with its precomputed
    results, then (``baseline``) without them, in fresh studies; time each step; compare the figures."""
    from analysis.pipeline.run import run_config

    cfg = _limited(load_config(config), pairs)
    variants = [("shipped results", cfg.precomputed)]
    if baseline or cfg.precomputed is None:
        variants.append(("computed here", None))
    if cfg.precomputed is None:
        variants = variants[1:]
    runs = []
    with tempfile.TemporaryDirectory(prefix="rmtui-bench-demo-", dir=folder) as d:
        for label, pre in variants:
            study = Path(d) / f"{label.replace(' ', '-')}.duckdb"
            t0 = time.perf_counter()
            res = run_config(dataclasses.replace(cfg, precomputed=pre), progress, study=study)
            run = DemoRun(label, time.perf_counter() - t0, [(s.step, s.seconds, s.message) for s in res.steps])
            run.agreement, run.figures = _figures(study)
            runs.append(run)
    out = DemoBench(pairs, runs)
    if len(runs) == 2:
        a, b = runs[0].figures, runs[1].figures
        common = sorted(set(a) & set(b))
        out.n_compared = len(common)
        for k in common:
            diff = abs(a[k] - b[k])
            if diff > out.max_abs_diff:
                out.max_abs_diff, out.worst = diff, k
            if float(a[k]).is_integer() and float(b[k]).is_integer() and a[k] != b[k]:
                out.n_differing_counts += 1
    return out
