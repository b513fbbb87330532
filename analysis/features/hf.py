"""``hf:<model>``: a Hugging Face text-classification model as a featurizer.

The model (hub id or local folder) is loaded with ``AutoModelForSequenceClassification`` and
``AutoTokenizer`` (``trust_remote_code`` off, fp32 on CPU), and run on the last response (or the
whole transcript with ``on="text"``) in length-sorted batches: texts are sorted by token count so a
batch pads little, then results are put back in input order.
TODO(unify): the scoring module (analysis/scoring/batching.py) has a token-budget batcher; this small loop
should move onto it once both have landed.

Label map (``label_map``: a dict or ``["LABEL=name", ...]``):
* no map: every label L of ``config.id2label`` -> continuous feature ``p_<slug(L)>`` (softmax
  probability); a single-logit model -> ``score`` (sigmoid of the logit);
* ``LABEL=name``: binary ``name`` = 1 when LABEL is the arg-max label;
* ``LABEL=p:name``: continuous ``name`` = probability of LABEL;
* a ``:target`` suffix (``LABEL=name:target``) marks the feature as a target (default spoiler).
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pandas as pd

from analysis.errors import ModelError, RmtuiError
from analysis.features.base import FeatureDef, Featurizer


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(s).lower()).strip("_")


def parse_label_map(items) -> list[tuple[str, str, str, str]]:
    """-> [(label, feature name, kind 'binary'|'continuous', role)]"""
    if not items:
        return []
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    if isinstance(items, str):
        items = [x for x in items.split(",") if x.strip()]
    out = []
    for it in items:
        for part in str(it).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise RmtuiError(f"--hf-map {part!r}: expected LABEL=name, LABEL=p:name or LABEL=name:target",
                                 "HF label map")
            label, rhs = (x.strip() for x in part.split("=", 1))
            kind = "binary"
            if rhs.startswith("p:"):
                kind, rhs = "continuous", rhs[2:]
            role = "spoiler"
            if rhs.endswith(":target"):
                role, rhs = "target", rhs[: -len(":target")]
            if not re.fullmatch(r"[A-Za-z_][\w]*", rhs):
                raise RmtuiError(f"--hf-map {part!r}: feature name {rhs!r} must be an identifier", "HF label map")
            out.append((label, rhs, kind, role))
    return out


#: loaded (tokenizer, model) by (spec, device): rewrites featurized one at a time do not reload
_LOADED: dict = {}


class HFClassifierFeaturizer(Featurizer):
    cheap = True
    offline = True
    chunk_size = 512

    def __init__(self, model: str, *, study=None, label_map=None, on: str = "response", max_length: int = 512,
                 batch_size: int = 32, device: str = "auto") -> None:
        if not model:
            raise RmtuiError("hf: needs a model, e.g. hf:unitary/toxic-bert or hf:/path/to/folder", "HF featurizer")
        if on not in ("response", "text"):
            raise RmtuiError(f"hf featurizer: on must be response or text, got {on!r}", "HF featurizer")
        self.model_spec = model
        self.name = f"hf:{model}"
        self.on, self.max_length, self.batch_size = on, int(max_length), int(batch_size)
        self.map = parse_label_map(label_map)
        self._raw_map = [f"{l}={'p:' if k == 'continuous' else ''}{n}{':target' if r == 'target' else ''}"
                         for l, n, k, r in self.map]
        self._load(device)
        fp = json.dumps([self.id2label, self._raw_map, self.on, self.max_length, self._weights_fp], sort_keys=True)
        self.version = hashlib.blake2b(fp.encode(), digest_size=6).hexdigest()

    def _load(self, device: str) -> None:
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as e:  # pragma: no cover
            raise ModelError(f"hf featurizer needs torch and transformers: {e}") from e
        try:
            import transformers

            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()
        except Exception:  # pragma: no cover
            pass
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        key = (self.model_spec, device)
        try:
            if key in _LOADED:
                self.tok, self.net = _LOADED[key]
            else:
                self.tok = AutoTokenizer.from_pretrained(self.model_spec)
                self.net = AutoModelForSequenceClassification.from_pretrained(
                    self.model_spec, dtype=torch.float32, trust_remote_code=False)
                self.net.to(device).eval()
                _LOADED[key] = (self.tok, self.net)
                while len(_LOADED) > 2:           # keep at most two classifiers in memory
                    _LOADED.pop(next(iter(_LOADED)))
        except Exception as e:
            hint = " (offline: HF_HUB_OFFLINE is set and the model is not in the local cache)" \
                if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
            raise ModelError(f"cannot load classifier {self.model_spec!r}{hint}: {type(e).__name__}: {e}") from e
        self.device = device
        n = int(self.net.config.num_labels)
        id2label = getattr(self.net.config, "id2label", None) or {i: f"LABEL_{i}" for i in range(n)}
        self.id2label = {int(k): str(v) for k, v in id2label.items()}
        labels = set(self.id2label.values())
        for label, name, _, _ in self.map:
            if label not in labels:
                raise RmtuiError(f"--hf-map: model {self.model_spec!r} has no label {label!r}; its labels: "
                                 f"{', '.join(sorted(labels))}", "HF label map")
        p = os.path.join(self.model_spec, "config.json")
        self._weights_fp = os.path.getsize(p) if os.path.exists(p) else getattr(self.net.config, "_commit_hash", "")

    def feature_defs(self) -> list[FeatureDef]:
        if self.map:
            return [FeatureDef(name, kind, role, True,
                               (f"probability of label {label!r}" if kind == "continuous" else f"1 if {label!r} is the top label")
                               + f" of classifier {self.model_spec} on the {self.on}") for label, name, kind, role in self.map]
        if len(self.id2label) == 1:
            return [FeatureDef("score", "continuous", "spoiler", True,
                               f"sigmoid of the single logit of {self.model_spec} on the {self.on}")]
        return [FeatureDef(f"p_{_slug(l)}", "continuous", "spoiler", True,
                           f"softmax probability of label {l!r} of classifier {self.model_spec} on the {self.on}")
                for _, l in sorted(self.id2label.items())]

    def config(self) -> dict:
        return {"spec": self.name, "label_map": self._raw_map, "on": self.on, "max_length": self.max_length,
                "batch_size": self.batch_size, "id2label": self.id2label}

    def probabilities(self, strings: list[str]) -> np.ndarray:
        """Class probabilities (n, num_labels); single-logit models: sigmoid, shape (n, 1)."""
        import torch

        if not strings:
            return np.zeros((0, len(self.id2label)))
        lengths = [len(ids) for ids in self.tok(strings, truncation=True, max_length=self.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(strings), max(1, len(self.id2label))), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                enc = self.tok([strings[i] for i in idx], truncation=True, max_length=self.max_length,
                               padding=True, return_tensors="pt").to(self.device)
                logits = self.net(**enc).logits.float()
                probs = torch.sigmoid(logits) if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)
                out[idx] = probs.cpu().numpy()
        return out

    def featurize(self, texts: pd.DataFrame) -> pd.DataFrame:
        col = "response" if self.on == "response" else "text"
        strings = [s if isinstance(s, str) else "" for s in texts[col]]
        p = self.probabilities(strings)
        cols: dict[str, np.ndarray] = {}
        if self.map:
            label2idx = {v: k for k, v in self.id2label.items()}
            top = p.argmax(axis=1)
            for label, name, kind, _ in self.map:
                j = label2idx[label]
                cols[name] = p[:, j] if kind == "continuous" else (top == j).astype(float)
        elif p.shape[1] == 1:
            cols["score"] = p[:, 0]
        else:
            for j, l in sorted(self.id2label.items()):
                cols[f"p_{_slug(l)}"] = p[:, j]
        wide = pd.DataFrame(cols)
        wide.insert(0, "text_id", list(texts["text_id"]))
        return wide.melt(id_vars="text_id", var_name="name", value_name="value")
