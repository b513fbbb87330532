"""The featurizer interface, feature definitions and the study-level runner (specs: registry.py).

A featurizer turns a *text frame* (``text_id, context, response, text``) into a long frame
``text_id, name, value`` (one row per text and feature, value a float). Featurizers are named as
stored in the study: ``heuristic``, ``llm:<model>``, ``hf:<model>``, ``file:<name>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pandas as pd

from analysis.errors import RmtuiError

KINDS = ("binary", "ordinal", "count", "continuous")
ROLES = ("target", "spoiler")


@dataclass(frozen=True)
class FeatureDef:
    """One feature: ``kind`` in binary|ordinal|count|continuous, ``role`` target|spoiler,
    ``proxy`` True when it is a cheap stand-in for a judged property (heuristic features always are)."""

    name: str
    kind: str
    role: str
    proxy: bool
    description: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RmtuiError(f"feature {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}",
                             "Feature definition")
        if self.role not in ROLES:
            raise RmtuiError(f"feature {self.name!r}: role {self.role!r} is not one of {', '.join(ROLES)}",
                             "Feature definition")


@dataclass
class Chunk:
    """What a featurizer hands back for a batch of texts: values, and texts it could not label."""

    values: pd.DataFrame                       # long: text_id, name, value
    failures: list[tuple[str, str, int]] = field(default_factory=list)   # (text_id, reason, attempts)
    n_texts: int = 0                           # texts this chunk covers (labelled + failed)


class Featurizer:
    """Base class. Subclasses set ``name`` and ``version`` and implement :meth:`feature_defs` and
    :meth:`featurize`; expensive ones override :meth:`featurize_iter` to stream results."""

    name: str = ""
    version: str = "1"
    #: cheap featurizers recompute silently when their version changes; expensive ones refuse
    cheap: bool = True
    #: can run with no network and no user input (used by ``featurize_texts`` for rewrites)
    offline: bool = True
    #: texts per chunk committed by featurize_study
    chunk_size: int = 2000

    def feature_defs(self) -> list[FeatureDef]:
        raise NotImplementedError

    def featurize(self, texts: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def config(self) -> dict:
        """What is recorded in ``featurizers.config`` (must be enough to rebuild the featurizer)."""
        return {"spec": self.name}

    def featurize_iter(self, texts: pd.DataFrame, *, cancel=None) -> Iterator[Chunk]:
        for start in range(0, len(texts), self.chunk_size):
            if cancel is not None and cancel.is_set():
                return
            part = texts.iloc[start:start + self.chunk_size]
            yield Chunk(self.featurize(part), [], len(part))

    def estimate(self, texts: pd.DataFrame) -> dict | None:
        """Cost estimate before a run (LLM labelers); None when free."""
        return None


@dataclass
class FeaturizeResult:
    featurizer: str
    version: str
    n_texts: int = 0          # distinct texts of the study (or of the limited selection)
    n_cached: int = 0         # already featurized by this featurizer+version: nothing computed
    n_done: int = 0           # featurized in this run
    n_failed: int = 0         # listed in label_failures after this run
    n_values: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    estimate: dict | None = None
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    n_precomputed: int = 0    # texts stored from the precomputed path (shipped values and the recomputed sample)
    precomputed: str = ""     # one line: what was taken from them and how it was checked, or why not

    @property
    def texts_per_s(self) -> float:
        return self.n_done / self.seconds if self.seconds > 0 else 0.0


def run_featurizer(study, fz: Featurizer, texts: pd.DataFrame, *, progress: Callable[[int], None] | None = None,
                   confirm: Callable[[dict], bool] | None = None, cancel=None, replace: bool = False,
                   skip_failed: bool = False) -> FeaturizeResult:
    """Featurize ``texts`` with ``fz``, skipping texts it already holds values for; commit per chunk."""
    from analysis.store import features as store

    import threading

    t0 = time.perf_counter()
    if cancel is None:
        cancel = threading.Event()   # set on Ctrl-C inside the LLM client, so in-flight calls stop early
    res = FeaturizeResult(fz.name, fz.version)
    texts = texts.drop_duplicates("text_id")
    res.n_texts = len(texts)
    store.register_featurizer(study, fz.name, fz.version, fz.config(), fz.feature_defs(),
                              replace_stale=fz.cheap or replace)
    done = store.done_text_ids(study, fz.name, texts["text_id"])
    todo = texts[~texts["text_id"].isin(done)]
    if skip_failed:
        failed = set(store.label_failures(study, fz.name)["text_id"])
        todo = todo[~todo["text_id"].isin(failed)]
    res.n_cached = len(done)
    if progress and res.n_cached:
        progress(res.n_cached)
    if len(todo):
        res.estimate = fz.estimate(todo)
        if res.estimate is not None and res.estimate.get("ask") and confirm is not None:
            if not confirm(res.estimate):
                res.cancelled = True
                res.seconds = time.perf_counter() - t0
                return res
    if getattr(study, "precomputed", None) is not None and len(todo):
        from analysis.features.precomputed import take_precomputed_features

        rows, todo, res.precomputed = take_precomputed_features(study, fz, todo)
        if len(rows):
            res.n_values += store.write_features(study, fz.name, rows)
            res.n_precomputed = int(rows["text_id"].nunique())
            res.n_done += res.n_precomputed
            if progress:
                progress(res.n_precomputed)
    try:
        for chunk in fz.featurize_iter(todo, cancel=cancel):
            res.n_values += store.write_features(study, fz.name, chunk.values)
            store.record_failures(study, fz.name, chunk.failures)
            n_ok = chunk.values["text_id"].nunique() if len(chunk.values) else 0
            res.n_done += n_ok
            res.failures.extend(chunk.failures)
            if progress:
                progress(chunk.n_texts or n_ok + len(chunk.failures))
    finally:
        res.seconds = time.perf_counter() - t0
    if cancel is not None and cancel.is_set():
        res.cancelled = True
    res.n_failed = len(store.label_failures(study, fz.name))
    return res
