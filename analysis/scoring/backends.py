"""The scoring backend interface: what an engine must do so that the study loop stays one.

The study loop (:func:`analysis.scoring.study.score_study`) runs in the driver process, the only
process that writes the study (DuckDB allows one writer):

    pending texts (by model_id and text hash)  ->  backend.iter_results(texts)  ->  result frames
    DataFrame[text_id, reward, truncated, n_tokens]  ->  store.add_scores (one transaction per
    frame, anti-joined on (model_id, text_id): a repeated or retried frame adds nothing)

A backend never touches the study. Three implement it:

``local``        :class:`InProcessBackend`, the RewardModel in this process (today's engine);
``ray``          :class:`analysis.scoring.ray_backend.RayBackend`, actors of a Ray cluster, each with
                 the same loading code and batching as ``local`` (the same model_id: same kernels);
``vllm-server``  :class:`analysis.scoring.served.ServedBackend`, a vLLM server's ``POST /classify``
                 (its model_id records the engine: the kernels differ).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from analysis.errors import ModelError
from analysis.scoring.models import RewardModel, _dedupe
from analysis.scoring.settings import Progress

RESULT_COLUMNS = ("text_id", "reward", "truncated", "n_tokens")
ENGINES = ("local", "ray", "vllm-server")


@runtime_checkable
class ScoringBackend(Protocol):
    """An engine that turns texts into rewards for one model run (``model_id``)."""

    engine: str      # local | ray | vllm-server
    model_id: str    # what the study's scores are keyed by
    name: str
    role: str | None
    device: str
    dtype: str
    format: str
    max_length: int

    def record(self) -> dict[str, Any]:
        """The study's ``models`` row for this model run (see RewardModel.record)."""

    def iter_results(self, texts: pd.DataFrame, progress: Progress | None = None) -> Iterator[pd.DataFrame]:
        """Score ``texts`` (text_id, context, response[, text]); yield result frames as they are
        ready, in any order, each DataFrame[text_id, reward, truncated, n_tokens]."""

    def check_invariance(self, texts: pd.DataFrame) -> float:
        """Max |batched reward - one text at a time| over ``texts``."""

    def stats(self) -> dict[str, int]:
        """``token_budget`` (at the end, after OOM back-off) and ``n_oom``."""

    def close(self) -> None:
        """Release what the backend holds (actors, connections)."""


def check_result_frame(frame: pd.DataFrame, engine: str) -> pd.DataFrame:
    """A result frame with the four columns, finite rewards, one row per text_id."""
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ModelError(f"the {engine} engine returned a result without column(s) {', '.join(missing)}",
                         "Scoring engine")
    frame = frame[list(RESULT_COLUMNS)]
    rewards = frame["reward"].to_numpy(dtype=np.float64)
    if len(rewards) and not np.isfinite(rewards).all():
        bad = frame["text_id"].to_numpy()[~np.isfinite(rewards)][0]
        raise ModelError(f"the {engine} engine returned a non-finite reward for text {bad}", "Scoring engine")
    return frame.drop_duplicates("text_id")


class DescribedByModel:
    """A backend whose run is described by a RewardModel it holds as ``self.rm`` (the model id, device,
    dtype, format, max length and display name every score run records)."""

    rm: RewardModel

    model_id = property(lambda self: self.rm.model_id)
    device = property(lambda self: self.rm.device)
    dtype = property(lambda self: self.rm.dtype)
    format = property(lambda self: self.rm.format)
    max_length = property(lambda self: self.rm.max_length)

    @property
    def name(self) -> str:
        return self.rm.name

    @name.setter
    def name(self, value: str) -> None:
        self.rm.name = value


class InProcessBackend(DescribedByModel):
    """Today's engine: a :class:`RewardModel` loaded in this process."""

    engine = "local"

    def __init__(self, rm: RewardModel) -> None:
        self.rm = rm


    @property
    def role(self) -> str | None:
        return self.rm.role

    @role.setter
    def role(self, value: str | None) -> None:
        self.rm.role = value

    def record(self) -> dict[str, Any]:
        rec = self.rm.record()
        rec["settings"] = {**rec["settings"], "engine": self.engine}
        return rec

    def iter_results(self, texts: pd.DataFrame, progress: Progress | None = None) -> Iterator[pd.DataFrame]:
        return self.rm.iter_score(texts, progress)

    def check_invariance(self, texts: pd.DataFrame) -> float:
        texts = _dedupe(texts)
        batched = self.rm.score_frame(texts).set_index("text_id")["reward"].reindex(texts["text_id"]).to_numpy()
        single = self.rm.score_one_by_one(texts)
        return float(np.max(np.abs(batched - single))) if len(texts) else 0.0

    def stats(self) -> dict[str, int]:
        return {"token_budget": self.rm.runner.budget, "n_oom": self.rm.runner.n_oom}

    def close(self) -> None:
        pass


def is_served_spec(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(("http://", "https://"))
