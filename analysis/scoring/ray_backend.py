"""The Ray Data engine: score on the GPUs (or CPUs) of a Ray cluster, one node or many.

The driver (this process) keeps the study and is its only writer. It cuts the pending texts into
length-homogeneous chunks (sorted by length, then cut), hands them to Ray Data with
``from_pandas(list_of_frames)`` (one block per chunk, so every actor gets work), and
``map_batches(ScorerActor, compute=ActorPoolStrategy(size=N), num_gpus=..., batch_size=chunk)``
scores them. Each actor loads the RM with :func:`analysis.scoring.loading.load_reward_model`, the
same code as in-process scoring, checks that its model_id (source, revision or folder
fingerprint, format, max length, dtype) equals the driver's and refuses to score otherwise, and
scores its chunk with :meth:`RewardModel.score_frame`: length-sorted batches under the token budget
with the OOM back-off. Results stream back with ``iter_batches`` and the study loop commits each one
as it arrives.

Faults: Ray restarts an actor whose process died (``max_restarts=-1``, Ray Data's default for
actor pools) and reruns its chunk; a chunk that comes back twice adds nothing (the store
anti-joins). A killed driver loses at most its uncommitted chunks; a rerun scores what is
missing.

Ray is optional (``pip install 'rmtui[ray]'``) and imported only here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from analysis.errors import ModelError, RmtuiError
from analysis.scoring.backends import RESULT_COLUMNS, DescribedByModel
from analysis.scoring.loading import load_reward_model
from analysis.scoring.models import _dedupe
from analysis.scoring.settings import Progress, ScoreSettings

MIN_RAY = (2, 50)  # ActorPoolStrategy(size=...) with compute=; `concurrency=` is deprecated since 2.51
# CPUs left free for Ray Data's own tasks (input, output splitting, the iterator's prefetch). An
# actor pool that takes every CPU deadlocks a small cluster: measured on 2 CPUs, 2 actors with
# num_cpus=1 hung with the input task waiting for a CPU forever. So actors share what is left
# after this reserve (fractional CPUs when needed), and a cluster without a CPU to spare is refused.
RESERVED_CPUS = 1.0
_TEXT_COLUMNS = ["text_id", "context", "response", "text"]


def import_ray():
    """``ray`` with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RmtuiError("--engine ray needs Ray Data, which is not installed: pip install 'rmtui[ray]' "
                         f"(ray[data]>={MIN_RAY[0]}.{MIN_RAY[1]})", "Ray not installed") from None
    try:
        version = tuple(int(x) for x in ray.__version__.split(".")[:2])
    except ValueError:  # pragma: no cover - a dev build
        version = MIN_RAY
    if version < MIN_RAY:
        raise RmtuiError(f"--engine ray needs Ray {MIN_RAY[0]}.{MIN_RAY[1]} or later; this is Ray "
                         f"{ray.__version__}: pip install -U 'rmtui[ray]'", "Ray too old")
    return ray


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # rmtui draws its own bar (texts/s across the cluster)
    for attr in ("print_on_execution_start", "enable_operator_progress_bars"):
        if hasattr(ctx, attr):
            setattr(ctx, attr, False)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


class ScorerActor:
    """A Ray Data actor: the RM loaded once, then one chunk per call."""

    def __init__(self, spec: str, settings: ScoreSettings, expected_id: str, torch_threads: int,
                 crash_marker: str | None = None, batch_delay_s: float = 0.0) -> None:
        import torch

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(max(1, int(torch_threads)))
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.crash_marker = crash_marker
        self.batch_delay_s = float(batch_delay_s)
        self.calls = 0
        self.error: str | None = None
        self.rm = None
        try:
            rm = load_reward_model(spec, settings)
        except RmtuiError as e:
            self.error = f"{spec}: cannot load on Ray worker {self.worker}: {e.message}"
            return
        if rm.model_id != expected_id:
            # refuse: the rewards would land under the driver's model_id from another model
            self.error = (f"{spec}: Ray worker {self.worker} loaded model id {rm.model_id} (revision "
                          f"{rm.revision}, {rm.format}, {rm.dtype}, max length {rm.max_length}) but the driver "
                          f"expects {expected_id}; give every node the same model folder or revision")
            return
        self.rm = rm

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.error is not None:
            return _frame(error=self.error, worker=self.worker)
        self.calls += 1
        if self.crash_marker and self.calls >= 2 and not os.path.exists(self.crash_marker):
            Path(self.crash_marker).write_text(self.worker)  # test hook: die once, mid-job
            os._exit(1)
        if self.batch_delay_s:
            time.sleep(self.batch_delay_s)  # test hook: a slow job to kill
        t0 = time.perf_counter()
        try:
            out = self.rm.score_frame(batch)
        except RmtuiError as e:  # e.g. a single text out of memory: one line, not retried
            return _frame(error=f"Ray worker {self.worker}: {e.message}", worker=self.worker)
        busy = (time.perf_counter() - t0) / max(len(out), 1)  # each row's share of the chunk's time
        return out.assign(error=None, worker=self.worker, token_budget=int(self.rm.runner.budget),
                          n_oom=int(self.rm.runner.n_oom), busy_s=busy)


def _frame(*, error: str, worker: str) -> pd.DataFrame:
    return pd.DataFrame({"text_id": [""], "reward": [0.0], "truncated": [False], "n_tokens": [0],
                         "error": [error], "worker": [worker], "token_budget": [0], "n_oom": [0], "busy_s": [0.0]})


def length_chunks(texts: pd.DataFrame, chunk_size: int) -> list[pd.DataFrame]:
    """``texts`` sorted by length (characters, longest first: an out-of-memory error shows early)
    and cut into chunks of ``chunk_size``: each chunk pads little when the actor batches it."""
    if not len(texts):
        return []
    lengths = (texts["context"].fillna("").astype(str).str.len().to_numpy()
               + texts["response"].fillna("").astype(str).str.len().to_numpy())
    order = np.argsort(-lengths, kind="stable")
    cols = [c for c in _TEXT_COLUMNS if c in texts.columns]
    frame = texts.iloc[order][cols].reset_index(drop=True)
    if "text" in frame.columns:
        frame["text"] = frame["text"].astype(object).where(frame["text"].notna(), None)
    return [frame.iloc[s:s + chunk_size].reset_index(drop=True) for s in range(0, len(frame), chunk_size)]


class RayBackend(DescribedByModel):
    """Score on a Ray cluster; see the module docstring.

    ``address``: None (a Ray already initialised in this process, else a local one), ``"auto"`` (the
    cluster this node belongs to) or ``HOST:PORT``. ``gpus``: GPUs in all (one actor each unless
    ``actors`` says otherwise); 0: CPU actors; None: every GPU of the cluster (none: CPU actors). ``actors``: pool size (default: one per GPU, or
    the CPUs left after the reserve, at most 8, on a CPU cluster).
    """

    engine = "ray"

    def __init__(self, spec: str, settings: ScoreSettings | None = None, *, name: str | None = None,
                 address: str | None = None, gpus: int | None = None, actors: int | None = None,
                 _crash_marker: str | None = None, _batch_delay_s: float = 0.0) -> None:
        self._ray = import_ray()
        settings = dataclasses.replace(settings) if settings else ScoreSettings()
        if (gpus is not None and int(gpus) < 0) or (actors is not None and int(actors) < 1):
            raise RmtuiError("--gpus must be 0 or more and --actors at least 1", "Bad option")
        self._owns_ray = False
        self._connect(address)
        try:
            self._setup(spec, settings, name, gpus, actors)
        except BaseException:
            self.close()
            raise
        self._crash_marker = _crash_marker
        self._batch_delay_s = _batch_delay_s

    def _setup(self, spec, settings, name, gpus, actors) -> None:
        if gpus is None:  # every GPU of the cluster, unless the device says cpu
            gpus = 0 if settings.device == "cpu" else int(self._ray.cluster_resources().get("GPU", 0))
        self.gpus = int(gpus)
        if settings.device == "auto":
            settings.device = "cuda" if self.gpus else "cpu"  # what the actors will run on
        if self.gpus and settings.device != "cuda":
            raise RmtuiError(f"--gpus {self.gpus} with --device {settings.device}: GPU actors score on cuda",
                             "Bad option")
        if settings.device == "cuda" and not self.gpus:
            raise RmtuiError("--device cuda with the Ray engine needs --gpus N (GPUs for the actors)", "Bad option")
        settings.oom_hook = None  # not sent to the workers (a local callable)
        # the driver learns the model id without the weights: config, tokenizer, fingerprint
        self.rm = load_reward_model(spec, settings, name=name, weights=False)
        self.settings = self.rm.settings
        self.actor_spec = self._actor_spec(str(spec))
        self.role: str | None = None
        self._workers: dict[str, tuple[int, int]] = {}  # worker -> (token budget, n_oom)
        self._busy_s = 0.0  # the actors' scoring time, summed
        self.n_actors, self.cpus_per_actor, self.gpus_per_actor = self._plan(actors)

    # the description (DescribedByModel) comes from the weightless driver copy

    def record(self) -> dict[str, Any]:
        rec = self.rm.record()
        rec["settings"] = {**rec["settings"], "engine": "ray", "ray_actors": self.n_actors,
                           "ray_gpus_per_actor": self.gpus_per_actor, "ray_cpus_per_actor": self.cpus_per_actor,
                           "ray_version": self._ray.__version__}
        return rec

    def _actor_spec(self, spec: str) -> str:
        """What the workers load: ``embedded:`` specs as given (they resolve on each node), local
        folders by absolute path (a worker's working directory is not the driver's), hub ids as given."""
        if spec.startswith("embedded:"):
            return spec
        if Path(self.rm.source).is_dir():
            return self.rm.source
        return spec

    # -- cluster ---------------------------------------------------------------------------------
    def _connect(self, address: str | None) -> None:
        ray = self._ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True)
            except Exception as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise RmtuiError(f"cannot start or join {where}: {type(e).__name__}: "
                                 f"{_first_line(e)}", "Ray") from None
            self._owns_ray = True
        _quiet_ray_data()

    def _plan(self, actors: int | None) -> tuple[int, float, float]:
        res = self._ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        spare = cpus - RESERVED_CPUS
        if spare <= 0:
            raise RmtuiError(f"the Ray cluster has {cpus:g} CPU(s); the Ray engine needs at least "
                             f"{RESERVED_CPUS + 1:g}: one stays free for Ray Data's own tasks", "Ray")
        if self.gpus:
            if self.gpus > gpus:
                raise RmtuiError(f"--gpus {self.gpus}: the Ray cluster has {gpus:g} GPU(s)", "Ray")
            n = int(actors or self.gpus)
            gpus_per_actor = self.gpus / n
            cpus_per_actor = min(1.0, spare / n)  # GPU actors need one CPU each at most
        else:
            n = int(actors or max(1, min(8, int(spare))))
            gpus_per_actor = 0.0
            cpus_per_actor = spare / n  # CPU actors share what is left after the reserve
        cpus_per_actor = math.floor(cpus_per_actor * 100) / 100
        if cpus_per_actor <= 0:
            raise RmtuiError(f"--actors {n}: too many for {cpus:g} CPUs", "Ray")
        return n, cpus_per_actor, gpus_per_actor

    # -- scoring ---------------------------------------------------------------------------------
    def iter_results(self, texts: pd.DataFrame, progress: Progress | None = None,
                     chunk_size: int | None = None) -> Iterator[pd.DataFrame]:
        ray = self._ray
        texts = _dedupe(texts)
        n_total = len(texts)
        if progress:
            progress(0, n_total)
        if not n_total:
            return
        cs = int(chunk_size or self.settings.chunk_size)
        chunks = length_chunks(texts, cs)
        ds = ray.data.from_pandas(chunks)
        remote: dict[str, Any] = {}
        if self.gpus_per_actor:
            remote["num_gpus"] = self.gpus_per_actor
        ds = ds.map_batches(
            ScorerActor,
            fn_constructor_kwargs=dict(spec=self.actor_spec, settings=self.settings, expected_id=self.model_id,
                                       torch_threads=max(1, int(self.cpus_per_actor)),
                                       crash_marker=self._crash_marker, batch_delay_s=self._batch_delay_s),
            compute=ray.data.ActorPoolStrategy(size=self.n_actors),
            batch_size=cs,  # an int: Ray requires it with num_gpus; one chunk per call
            batch_format="pandas", num_cpus=self.cpus_per_actor, **remote,
        )
        done = 0
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=1):
                errors = batch["error"].dropna()
                if len(errors):
                    raise ModelError(str(errors.iloc[0]), "Ray worker refused")
                for w, b, k in zip(batch["worker"], batch["token_budget"], batch["n_oom"]):
                    self._workers[w] = (int(b), int(k))
                self._busy_s += float(batch["busy_s"].sum())
                out = batch[list(RESULT_COLUMNS)].reset_index(drop=True)
                done += len(out)
                if progress:
                    progress(min(done, n_total), n_total)
                yield out
        except RmtuiError:
            raise
        except Exception as e:
            raise ModelError(f"the Ray job failed: {type(e).__name__}: {_first_line(e)}", "Ray") from None

    def score_frame(self, texts: pd.DataFrame, progress: Progress | None = None) -> pd.DataFrame:
        """All rewards of ``texts`` in the frame's order (benchmarks, invariance checks)."""
        texts = _dedupe(texts)
        parts = list(self.iter_results(texts, progress))
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                                 zip(RESULT_COLUMNS, (str, float, bool, "int64"))})
        out = pd.concat(parts, ignore_index=True).drop_duplicates("text_id").set_index("text_id")
        return out.reindex(texts["text_id"]).reset_index()

    def check_invariance(self, texts: pd.DataFrame) -> float:
        """Batched on the cluster vs one text per chunk on the cluster (each chunk its own batch)."""
        texts = _dedupe(texts)
        if not len(texts):
            return 0.0
        batched = self.score_frame(texts)["reward"].to_numpy()
        parts = list(self.iter_results(texts, chunk_size=1))
        single = pd.concat(parts).drop_duplicates("text_id").set_index("text_id")["reward"]
        return float(np.max(np.abs(batched - single.reindex(texts["text_id"]).to_numpy())))

    def busy_seconds(self) -> float:
        """Seconds the actors spent scoring (summed over actors), for benchmarks."""
        return self._busy_s

    def stats(self) -> dict[str, int]:
        if not self._workers:
            return {"token_budget": int(self.settings.token_budget or 0), "n_oom": 0}
        return {"token_budget": min(b for b, _ in self._workers.values()),
                "n_oom": sum(k for _, k in self._workers.values())}

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # Ray wraps a worker's exception in a traceback; its last line names the error
    return (lines[-1] if len(lines) > 1 and "Traceback" in str(e) else lines[0] if lines else "")[:300]
