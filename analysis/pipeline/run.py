"""``rmtui run``: ingest -> score -> featurize -> fit -> rewrite experiment -> robustness, resumable.

Each step has a *fingerprint*: a hash of its own settings and of what it reads (file sizes and mtimes
for ingest; the set of text ids for scoring and featurizing; the fingerprints of the steps it depends
on for fitting and the experiment). A step whose fingerprint equals the one recorded in the ``steps``
table, and whose results are still in the study, is skipped. A step is recorded only when it
finishes, so a run stopped in the middle (Ctrl-C, a kill, a crash) redoes that step on the next run;
the functions underneath are themselves cached (scoring skips scored texts, featurizing skips
featurized texts, ingest skips known pairs), so the redo costs only the rest.

The functions of the other modules are imported lazily inside the steps, so that a run whose steps
are all done (reopening the demo) starts fast and imports no torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from analysis.pipeline.config import ConfigError, DataSource, RunConfig, load_config, parse_config
from analysis.errors import RmtuiError

__all__ = [
    "run_config", "RunResult", "StepResult", "Reporter", "ProgressHandle", "fingerprint",
    "load_config", "parse_config", "plan_steps",
]


# ---------------------------------------------------------------------------------------------
# results and reporting


@dataclass
class StepResult:
    step: str
    status: str  # "ran" | "skipped"
    seconds: float
    message: str
    summary: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def ran(self) -> bool:
        return self.status == "ran"


@dataclass
class RunResult:
    study: Path
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> list[str]:
        return [s.step for s in self.steps if s.ran]

    @property
    def skipped(self) -> list[str]:
        return [s.step for s in self.steps if not s.ran]

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.step == name), None)


class ProgressHandle:
    """A progress callback handed to the long functions underneath.

    Accepts the shapes those functions use: ``h(n)`` advances by n; ``h(done, total)`` sets both;
    keywords ``advance=``, ``completed=``, ``total=``, ``description=``.
    """

    def __init__(self, update: Callable[..., None] | None = None) -> None:
        self._update = update or (lambda **kw: None)
        self.completed = 0
        self.total: int | None = None

    def __call__(self, *args: Any, **kw: Any) -> None:
        if len(args) == 1 and isinstance(args[0], (int, float)) and not kw:
            kw = {"advance": args[0]}
        elif len(args) >= 2:
            kw = {"completed": args[0], "total": args[1], **kw}
        if "advance" in kw and kw["advance"] is not None:
            self.completed += int(kw["advance"])
        if kw.get("completed") is not None:
            self.completed = int(kw["completed"])
        if kw.get("total") is not None:
            self.total = int(kw["total"])
        self._update(completed=self.completed, total=self.total, description=kw.get("description"))

    # some callers use the rich-like method names
    def advance(self, n: int = 1) -> None:
        self(advance=n)

    def update(self, **kw: Any) -> None:
        self(**kw)

    def close(self) -> None:
        pass


class Reporter:
    """What the pipeline tells its caller. The CLI renders it with rich; the default says nothing."""

    def step_start(self, step: str, description: str) -> None:
        pass

    def step_end(self, result: StepResult) -> None:
        pass

    def progress(self, description: str, total: int | None = None) -> ProgressHandle:
        return ProgressHandle()


# ---------------------------------------------------------------------------------------------
# fingerprints


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _file_state(path: str) -> dict[str, Any]:
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _folder_state(folder: Path) -> list[Any]:
    """Names, sizes and mtimes of a model folder's files (not recursive): a changed model changes it."""
    try:
        return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in folder.iterdir() if f.is_file())
    except OSError:
        return []


def _model_state(spec: str) -> Any:
    """What identifies a model's weights without loading it: its folder's files (local or embedded);
    a hub id is identified by its name (and the revision the scorer records)."""
    if spec.startswith("embedded:"):
        try:
            from analysis.models.embedded import delta_dir

            return _folder_state(delta_dir(spec.split(":", 1)[1].strip().lower()))
        except Exception:  # missing: the scoring step reports it
            return None
    p = Path(spec)
    if p.is_dir():
        return _folder_state(p)
    return None


def _jsonable(obj: Any) -> Any:
    """Reduce a result object (dataclass, dict, ...) to scalars worth recording."""
    if obj is None:
        return {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        d = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif isinstance(obj, dict):
        d = dict(obj)
    elif hasattr(obj, "__dict__"):
        d = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    else:
        return {"value": str(obj)}
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and len(v) <= 20 and all(isinstance(x, (bool, int, float, str)) for x in v):
            out[k] = list(v)
        elif isinstance(v, (list, tuple)):
            out[f"n_{k}"] = len(v)
        elif hasattr(v, "__len__") and hasattr(v, "columns"):  # a DataFrame
            out[f"n_{k}"] = len(v)
    return out


# ---------------------------------------------------------------------------------------------
# the run


def _source_units(ds: DataSource) -> list[tuple[str, str, str | None]]:
    """(step name, source spec, data_dir) for every unit a DataSource reads."""
    if ds.is_hf or ds.format == "hf":
        return [(f"ingest:{ds.source}" + (f"/{d}" if d else "") + f":{ds.hf_split}", ds.source, d)
                for d in ds.data_dirs]
    return [(f"ingest:{Path(p).parent.name}/{Path(p).name}", p, None) for p in ds.paths]


def plan_steps(cfg: RunConfig) -> list[str]:
    """The names of the steps a config runs, in order."""
    steps = [u[0] for ds in cfg.data for u in _source_units(ds)]
    if cfg.heldout:
        steps.append("heldout")
    steps += [f"score:{m.name}" for m in cfg.models]
    steps += [f"featurize:{f.spec}" for f in cfg.featurizers]
    if cfg.fit.enabled and cfg.models:
        steps.append("fit")
    if cfg.rewrite is not None:
        steps.append("rewrite")
        if cfg.rewrite.robustness:
            steps.append("robustness")
    return steps


class _Runner:
    def __init__(self, cfg: RunConfig, study, reporter: Reporter, force: bool) -> None:
        self.cfg = cfg
        self.study = study
        self.reporter = reporter
        self.force = force
        self.results: list[StepResult] = []
        self.fps: dict[str, str] = {}

    def step(self, name: str, description: str, fp_parts: Any,
             fn: Callable[[], tuple[dict[str, Any], str]],
             still_there: Callable[[dict[str, Any]], bool] | None = None) -> StepResult:
        from analysis.store import steps as store_steps

        fp = fingerprint(name, fp_parts)
        self.fps[name] = fp
        prev = store_steps.get_step(self.study, name)
        if (not self.force and prev is not None and prev["fingerprint"] == fp
                and (still_there is None or still_there(prev["summary"]))):
            res = StepResult(name, "skipped", 0.0, "up to date", prev["summary"], fp)
            self.results.append(res)
            self.reporter.step_end(res)
            return res
        self.reporter.step_start(name, description)
        pre = getattr(self.study, "precomputed", None)
        taken_before = {k: c.n_taken for k, c in pre.checks.items()} if pre is not None else {}
        t0 = time.perf_counter()
        try:
            summary, message = fn()
        except RmtuiError as e:  # say which step failed; what it committed stays
            if not e.message.startswith(f"step {name}: "):
                e.message = f"step {name}: {e.message}"
                e.args = (e.message,)
            raise
        seconds = time.perf_counter() - t0
        if pre is not None:
            checks = _precomputed_checks(pre, taken_before)
            if checks:
                summary["precomputed_checks"] = [c.record(pre.source) for c in checks]
                summary.setdefault("precomputed", "; ".join(c.line(pre.source) for c in checks))
        store_steps.record_step(self.study, name, fp, seconds, summary)
        res = StepResult(name, "ran", seconds, message, summary, fp)
        self.results.append(res)
        self.reporter.step_end(res)
        return res

    # -- steps -------------------------------------------------------------------------------------
    def ingest(self) -> None:  # noqa: C901 - one loop over the configured sources
        from analysis.datasets.readers import ReadOptions
        from analysis.datasets.ingest import ingest as do_ingest

        for ds in self.cfg.data:
            for name, spec, data_dir in _source_units(ds):
                mapping, shape = _shape_of(ds, spec)
                opts = ReadOptions(subset=ds.subset, split=ds.split, fmt=ds.format, mapping=mapping,
                                   hf_split=ds.hf_split, hf_data_dir=data_dir, limit=ds.limit, shape=shape)
                settings = {k: v for k, v in vars(opts).items() if not (k == "shape" and v is None)}
                settings["strict"] = ds.strict
                state = {"hf": spec} if spec.startswith("hf:") or ds.format == "hf" else _file_state(spec)

                def run(spec=spec, opts=opts, ds=ds, label=name):
                    handle = self.reporter.progress(f"{label}: reading pairs")
                    try:
                        res = do_ingest(self.study, spec, opts, strict=ds.strict, progress=handle)
                    finally:
                        handle.close()
                    summary = {"source": spec, "n_read": res.n_read, "n_added": res.n_added,
                               "n_skipped": len(res.skipped), "n_flagged": len(res.flagged)}
                    return summary, (f"read {res.n_read:,} pairs, added {res.n_added:,}, "
                                     f"skipped {len(res.skipped):,} bad rows")

                self.step(name, f"reading {spec}", [settings, state], run)

    def heldout(self) -> None:
        from analysis.store import steps as store_steps

        n, h = store_steps.pair_set(self.study)

        def run():
            from analysis.models.embedded import mark_embedded_heldout

            out = mark_embedded_heldout(self.study)
            n_held, n_in = (int(out[0]), int(out[1])) if isinstance(out, tuple) else (None, None)
            summary = {"n_heldout": n_held, "n_in_sample": n_in, "n_pairs": n}
            msg = (f"{n_held:,} of {n:,} pairs held out from the embedded RMs' training"
                   if n_held is not None else "marked held-out pairs")
            return summary, msg

        self.step("heldout", "marking held-out pairs", [self.cfg.heldout, n, h], run)

    def score(self) -> None:
        from analysis.store import steps as store_steps

        n_texts, h = store_steps.text_set(self.study)
        for m in self.cfg.models:
            name = f"score:{m.name}"

            def run(m=m, name=name):
                from analysis.scoring import ScoreSettings, score_study

                settings = ScoreSettings(**m.settings_dict())
                spec = m.spec  # embedded:pre/post are resolved by the engine, which records the spec
                handle = self.reporter.progress(f"{name}: scoring texts", total=n_texts)
                self.study.release()  # shared study: hold the file only while a chunk is written
                try:
                    res = score_study(self.study, spec, m.role, name=m.name, settings=settings,
                                      progress=handle, engine=m.engine,
                                      engine_options=m.engine_options())
                finally:
                    handle.close()
                summary = _jsonable(res)
                summary.setdefault("model_id", getattr(res, "model_id", None))
                summary["n_texts"] = n_texts
                done = summary.get("n_scored")
                msg = (f"scored {done:,} texts" if isinstance(done, int) else "scored") + \
                    f" with {m.spec} ({m.role}); {n_texts:,} texts in the study"
                if summary.get("precomputed"):
                    msg += f"; {summary['precomputed']}"
                return summary, msg

            def still_there(summary: dict) -> bool:
                mid = summary.get("model_id")
                return not mid or store_steps.unscored_texts(self.study, mid) == 0

            self.step(name, f"scoring with {m.spec}",
                      [m.spec, _model_state(m.spec), m.role, m.name, m.settings_dict(), n_texts, h], run, still_there)

    def featurize(self) -> None:
        from analysis.store import steps as store_steps

        n_texts, h = store_steps.text_set(self.study)
        for f in self.cfg.featurizers:
            name = f"featurize:{f.spec}"

            def run(f=f, name=name):
                from analysis.features import featurize_study

                handle = self.reporter.progress(f"{name}: labelling texts", total=n_texts)
                try:
                    # the config is the user's consent to the featurizer's cost estimate (LLM labelers)
                    res = featurize_study(self.study, f.spec, progress=handle,
                                          confirm=lambda estimate: True, **f.options)
                finally:
                    handle.close()
                summary = _jsonable(res)
                summary["n_texts"] = n_texts
                done, failed = summary.get("n_done"), summary.get("n_failed") or 0
                msg = (f"labelled {done:,} texts" if isinstance(done, int) else "labelled") + \
                    f" with {f.spec}; {n_texts:,} texts in the study"
                if failed:
                    msg += f"; {failed:,} failed (in label_failures): the next run asks again for them"
                if summary.get("precomputed"):
                    msg += f"; {summary['precomputed']}"
                return summary, msg

            def still_there(summary: dict) -> bool:  # a step with failures is not done: rerun retries them
                return not summary.get("n_failed")

            self.step(name, f"featurizing with {f.spec}", [f.spec, f.options, n_texts, h], run, still_there)

    def _deps(self, prefixes: tuple[str, ...]) -> dict[str, str]:
        return {k: v for k, v in self.fps.items() if k.startswith(prefixes)}

    def fit(self) -> None:
        from analysis.store import steps as store_steps

        deps = self._deps(("heldout", "score:", "featurize:"))
        pairs = store_steps.pair_set(self.study)

        def run():
            from analysis.fit.study_fit import FitOptions, fit_study

            res = fit_study(self.study, _fit_options(FitOptions, self.cfg))
            summary = _jsonable(res)
            fid = summary.get("fit_id")
            msg = f"fit {fid}" if fid else "fitted"
            n = summary.get("n") or summary.get("n_pairs")
            if n:
                msg += f" on {n:,} pairs"
            return summary, msg

        def still_there(summary: dict) -> bool:
            return store_steps.has_fit(self.study, summary.get("fit_id"))

        self.step("fit", "fitting imprint, regimes, shift",
                  [self.cfg.fit.options, pairs, deps, store_steps.feature_state(self.study)], run, still_there)

    def rewrite(self) -> None:
        from analysis.store import steps as store_steps

        rw = self.cfg.rewrite
        assert rw is not None
        n_pairs, h = store_steps.pair_set(self.study)
        n = rw.sample_size(n_pairs)
        deps = self._deps(("score:", "featurize:", "heldout"))
        settings = dataclasses.asdict(rw)

        def run():
            from analysis.rewrite.experiment import run_experiment

            handle = self.reporter.progress(f"rewrite: {n:,} pairs with {rw.rewriter}",
                                            total=n * len(rw.sides))
            try:
                res = run_experiment(self.study, rw.rewriter, n, rw.seed, list(rw.sides),
                                     perturbation=rw.perturbation, progress=handle, **rw.options)
            finally:
                handle.close()
            summary = _jsonable(res)
            summary["stage_seconds"] = {k: round(v, 2) for k, v in (res.stage_seconds or {}).items()}
            msg = (f"rewrote {summary.get('n_done', 0):,} texts of a seeded sample of "
                   f"{summary.get('n_sampled', n):,} pairs (seed {rw.seed}) with {rw.rewriter}")
            if summary.get("n_cached"):
                msg += f"; {summary['n_cached']:,} were done before"
            if summary.get("n_failed"):
                msg += f"; {summary['n_failed']:,} failed"
            return summary, msg

        self.step("rewrite", f"rewrite experiment ({rw.rewriter}, n={n})", [settings, n, h, deps], run)

        if rw.robustness:
            rdeps = self._deps(("rewrite", "fit", "featurize:"))
            prev = self.results[-1].summary

            def run_rob():
                from analysis.rewrite.experiment import fit_robustness

                kw = {}
                exp = prev.get("experiment") or prev.get("experiment_id")
                if exp:
                    kw["experiment"] = exp
                res = fit_robustness(self.study, **kw)
                summary = _jsonable(res)
                n_rw = summary.get("n")
                return summary, ("fitted the robustness score (LPM of became-misaligned on flips)"
                                 + (f" on {n_rw:,} rewrites" if isinstance(n_rw, int) else ""))

            self.step("robustness", "fitting robustness", [rdeps], run_rob)


def _precomputed_checks(pre, taken_before: dict) -> list:
    """What a step took from the precomputed results (or why it did not): one check per model,
    featurizer or similarity model, counting what this step took."""
    out = []
    for key, chk in pre.checks.items():
        n = chk.n_taken - taken_before.get(key, 0)
        if n > 0 or (key not in taken_before and not chk.ok):
            out.append(dataclasses.replace(chk, n_taken=n))
    return out


def _fit_options(cls: Any, cfg: RunConfig) -> Any:
    """The fit's options dataclass from the config's [fit] table; unknown keys name the file and key."""
    opts = dict(cfg.fit.options)
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        for k in opts:
            if k not in names:
                raise ConfigError(f"{cfg.name}: fit.{k}: unknown fit option; expected one of: "
                                  f"{', '.join(sorted(names))}")
    try:
        return cls(**opts)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cfg.name}: fit: {e}") from e


def run_config(config: str | Path | dict | RunConfig, progress: Reporter | None = None, *,
               study: str | Path | None = None, force: bool = False,
               base_dir: str | Path | None = None) -> RunResult:
    """Run a config (a TOML path, a parsed dict or a :class:`RunConfig`) against its study.

    ``study`` overrides the config's study path; ``force`` redoes every step (the functions
    underneath still skip what is cached). Raises :class:`RmtuiError` on bad input;
    ``KeyboardInterrupt`` propagates after the study is closed (what was committed stays).
    """
    if isinstance(config, RunConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_config(config, base_dir=base_dir)
    else:
        cfg = load_config(config)
    if study is not None:
        cfg = dataclasses.replace(cfg, study=Path(study))
    if cfg.models and cfg.fit.enabled:
        roles = {m.role for m in cfg.models}
        if not {"pre", "post"} <= roles:
            raise ConfigError(f"{cfg.name}: models: the fit needs one model with role \"pre\" and one with "
                              "role \"post\" (or set [fit] enabled = false)")
    if cfg.fit.enabled and cfg.models:  # the [fit] table's mistakes fail now, not after hours of scoring
        from analysis.fit.study_fit import FitOptions
        from analysis.metrics.linreg import SE_TYPES

        o = _fit_options(FitOptions, cfg)
        if o.se not in SE_TYPES:
            raise ConfigError(f"{cfg.name}: fit.se: {o.se!r}: one of cluster, iid (hc1 also accepted)")
    reporter = progress or Reporter()
    from analysis.store import open_study

    t0 = time.perf_counter()
    # shared: while the models score, the file is held only while a chunk is written, so the app (and
    # rmtui summary/export) can open it meanwhile; the other steps hold it as they always did
    with open_study(cfg.study, shared=True, linger=None) as st:
        runner = _Runner(cfg, st, reporter, force)
        if cfg.precomputed is not None:
            from analysis.store.precomputed import Precomputed

            st.precomputed = Precomputed.load(cfg.precomputed)
        with st.hold():
            runner.ingest()
            if cfg.heldout:
                runner.heldout()
        runner.score()
        st.release()
        with st.hold():
            runner.featurize()
            if cfg.fit.enabled and cfg.models:
                runner.fit()
            if cfg.rewrite is not None:
                runner.rewrite()
    return RunResult(study=cfg.study, steps=runner.results, seconds=time.perf_counter() - t0)


def describe_error(e: Exception) -> str:  # pragma: no cover - convenience for callers
    return e.message if isinstance(e, RmtuiError) else f"{type(e).__name__}: {e}"


def _shape_of(ds, spec: str):
    """(plain mapping, Shape or None) of a [[data]] table: its map, preset (or the hf: name's), label, pairs."""
    from analysis.datasets.presets import get_preset, preset_for_hf
    from analysis.datasets.shapes import parse_map

    p = get_preset(ds.preset) if ds.preset else preset_for_hf(spec)
    if p is None and not ds.label and not ds.pairs:
        plain = {"prompt", "chosen", "rejected", "subset", "split"}
        if set(ds.map) <= plain:
            return dict(ds.map), None  # today's reader, unchanged settings
    items = (p.map_items() if p else []) + ([",".join(f"{k}={v}" for k, v in ds.map.items())] if ds.map else [])
    return parse_map(items, label=ds.label or (p.label if p else None), pairs=ds.pairs or (p.pairs if p else None),
                     preset=p.name if p else None)
