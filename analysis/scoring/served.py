"""A served RM: score through a vLLM server's pooling API (``POST /classify``).

For decoder RMs too big for one GPU: vLLM runs them with tensor parallelism
(``vllm serve MODEL --runner pooling --tensor-parallel-size 8``); rmtui sends it token ids and
stores the rewards like any other engine's. The spec is ``http://HOST:PORT/v1#MODEL`` (MODEL: the
served model's id; left out when the server serves one model).

What rmtui does and what the server does:

- rmtui tokenizes, with the model's own tokenizer (``--tokenizer``, default the served model's id
  as a folder or hub id) and the study's formats (pair, raw, chat), truncating the context from
  the LEFT exactly as in-process scoring does; so ``truncated`` and ``n_tokens`` are rmtui's, and
  the server gets ``input`` as lists of token ids. The server sees input ids only (no
  token_type_ids), so a pair-format model whose tokenizer uses token types is refused
  (use ``--format raw`` or ``chat``).
- ``use_activation: false``: the response's ``probs`` are then the raw logits; the reward is
  ``logits[0]`` (one label) or ``logits[1] - logits[0]`` (two), as in-process.
- ``truncate_prompt_tokens`` = max length (vLLM keeps the last k tokens: left truncation), a guard
  that never cuts what rmtui sent.

The model id records the engine (``vllm-server:MODEL``, the server's model root, the tokenizer
folder's fingerprint or revision, format, max length): vLLM's kernels are not transformers', so its
rewards are a model run of their own, never mixed with in-process rewards.

Transient faults (issue 25): an answer 5xx or 429, or a dropped connection (connect error, reset,
timeout, a server that closed mid-answer) is retried with exponential back-off and full jitter
(``retry_base`` doubling up to ``retry_cap`` seconds, or the server's ``Retry-After`` when it sends one),
at most ``max_tries`` attempts per request and ``retry_seconds`` in all per request; then the run fails
with the last error, its committed chunks kept (``score_runs.status = 'failed'``), and a rerun resumes.
The first request (``GET /v1/models``) does not retry a refused connection: nothing listening is
reported at once. ``n_retries`` counts the retries of this backend.

Request/response schema followed (vLLM's ``vllm/entrypoints/pooling/classify/protocol.py``):
request ``{"model", "input": str | list[str] | list[int] | list[list[int]], "use_activation",
"truncate_prompt_tokens"}``; response ``{"id", "object": "list", "created", "model", "data":
[{"index", "label", "probs", "num_classes"}], "usage": {"prompt_tokens", "total_tokens"}}``;
``GET /v1/models`` -> ``{"data": [{"id", "root", "max_model_len", ...}]}``.
Not run against a real vLLM on these machines (vLLM needs CUDA); tested against a loopback server
that follows this schema (tests/fake_vllm.py).
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from analysis.errors import ModelError, RmtuiError
from analysis.scoring.backends import DescribedByModel
from analysis.scoring.loading import load_reward_model, make_model_id
from analysis.scoring.models import _dedupe
from analysis.scoring.settings import Progress, ScoreSettings

API_KEY_ENV = "RMTUI_VLLM_API_KEY"  # sent as a bearer token when set; never recorded


def parse_served_spec(spec: str) -> tuple[str, str | None]:
    """``http://HOST:PORT/v1#MODEL`` -> (``http://HOST:PORT/v1``, ``MODEL``), user:password@ refused."""
    base, _, model = spec.partition("#")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"{spec}: a served RM is http://HOST:PORT/v1#MODEL", "Bad option")
    if parts.username or parts.password:
        raise ModelError(f"{parts.scheme}://...@{parts.hostname}: no credentials in the URL (they would be "
                         f"recorded in the study); set {API_KEY_ENV} instead", "Bad option")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), (model or None)


class ServedBackend(DescribedByModel):
    """Score with a vLLM server's ``/classify``; see the module docstring."""

    engine = "vllm-server"

    def __init__(self, spec: str, settings: ScoreSettings | None = None, *, name: str | None = None,
                 tokenizer: str | None = None, timeout: float = 300.0, batch_texts: int = 64,
                 parallel_requests: int = 4, max_tries: int = 6, retry_seconds: float = 300.0,
                 retry_base: float = 0.5, retry_cap: float = 30.0) -> None:
        import httpx

        if int(max_tries) < 1:
            raise ModelError(f"max_tries {max_tries}: must be at least 1", "Bad option")
        if not float(retry_seconds) >= 0 or not float(retry_base) >= 0 or not float(retry_cap) >= 0:
            raise ModelError("retry_seconds, retry_base and retry_cap: must be 0 or more seconds", "Bad option")
        self.max_tries, self.retry_seconds = int(max_tries), float(retry_seconds)
        self.retry_base, self.retry_cap = float(retry_base), float(retry_cap)
        self.n_retries = 0
        self._sleep = time.sleep

        self.url, model = parse_served_spec(spec)
        self.root_url = self.url[: -len("/v1")]
        headers = {"Authorization": f"Bearer {os.environ[API_KEY_ENV]}"} if os.environ.get(API_KEY_ENV) else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)
        self.batch_texts = max(1, int(batch_texts))
        self.parallel_requests = max(1, int(parallel_requests))
        info = self._model_info(model)
        self.served_model = str(info["id"])
        self.root = str(info.get("root") or self.served_model)
        self.max_model_len = info.get("max_model_len")
        settings = dataclasses.replace(settings) if settings else ScoreSettings()
        settings.device, settings.oom_hook = "cpu", None  # this process only tokenizes
        self.tokenizer_spec = tokenizer or self.served_model
        try:
            self.rm = load_reward_model(self.tokenizer_spec, settings, name=name or self.served_model, weights=False)
        except ModelError as e:
            raise ModelError(f"served RM {self.served_model}: its tokenizer and config are needed here to tokenize "
                             f"as in-process scoring does; give --tokenizer FOLDER_OR_HUB_ID ({e.message})",
                             "Served RM tokenizer") from None
        if isinstance(self.max_model_len, int) and 0 < self.max_model_len < self.rm.max_length:
            self.rm.max_length = self.max_model_len  # the server would refuse longer inputs
        if self.rm.format == "pair" and self.rm._use_tt:
            raise ModelError(f"served RM {self.served_model}: pair format with a tokenizer that uses token_type_ids; "
                             "the server gets input ids only, so the rewards would differ from the model's. "
                             "Use --format raw or --format chat", "Bad option")
        self.rm.dtype = "server"
        self.rm.device = "vllm-server"
        self.rm.model_id = make_model_id(f"vllm-server:{self.served_model}", f"{self.rm.revision}|root={self.root}",
                                         self.rm.format, self.rm.max_length, "server")
        self.role: str | None = None
        self.n_requests = 0

    # -- HTTP ------------------------------------------------------------------------------------
    def _request(self, method: str, url: str, *, retry_connect: bool = True, **kw) -> Any:
        """One HTTP call, retried on 5xx, 429 and dropped connections (see the module docstring)."""
        import httpx

        t0 = time.monotonic()
        for attempt in range(1, self.max_tries + 1):
            wait: float | None = None
            try:
                r = self._http.request(method, url, **kw)
            except httpx.HTTPError as e:
                connect = isinstance(e, httpx.ConnectError)
                fault = ModelError(f"served RM at {self.url}: {type(e).__name__}: {e}"
                                   + (f" (after {attempt} attempts)" if attempt > 1 else ""), "Served RM unreachable")
                if not isinstance(e, httpx.TransportError) or (connect and not retry_connect):
                    raise fault from None
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        raise ModelError(f"served RM at {url}: the answer is not JSON: {r.text[:200]!r}",
                                         "Served RM") from None
                fault = ModelError(f"served RM at {url}: HTTP {r.status_code}: {_error_text(r)}"
                                   + (f" (after {attempt} attempts)" if attempt > 1 else ""), "Served RM refused")
                if not (r.status_code == 429 or r.status_code >= 500):
                    raise fault
                wait = _retry_after(r.headers.get("Retry-After"))
            if wait is None:
                wait = random.uniform(0, min(self.retry_cap, self.retry_base * 2 ** (attempt - 1)))
            if attempt >= self.max_tries or time.monotonic() - t0 + wait > self.retry_seconds:
                raise fault
            self.n_retries += 1
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _model_info(self, model: str | None) -> dict:
        body = self._request("GET", f"{self.url}/models", retry_connect=False)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(d, dict) and "id" in d for d in data):
            raise ModelError(f"served RM at {self.url}/models: expected {{'data': [{{'id': ...}}]}}", "Served RM")
        ids = [str(d["id"]) for d in data]
        if model is None:
            if len(ids) != 1:
                raise ModelError(f"served RM at {self.url} serves {len(ids)} models ({', '.join(ids[:5])}); name one "
                                 f"as {self.url}#MODEL", "Bad option")
            return data[0]
        for d in data:
            if str(d["id"]) == model:
                return d
        raise ModelError(f"served RM at {self.url}: no model {model!r}; it serves {', '.join(ids[:5]) or 'none'}",
                         "Served RM")

    def _classify(self, ids: list[list[int]]) -> np.ndarray:
        """Raw logits -> rewards for a list of token-id sequences (one request)."""
        body = self._request("POST", f"{self.root_url}/classify", json={
            "model": self.served_model, "input": ids, "use_activation": False,
            "truncate_prompt_tokens": int(self.max_length),
        })
        self.n_requests += 1
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(ids):
            raise ModelError(f"served RM at {self.root_url}/classify: expected {len(ids)} results in 'data', got "
                             f"{len(data) if isinstance(data, list) else 'none'}", "Served RM")
        out = np.full(len(ids), np.nan)
        seen = np.zeros(len(ids), dtype=bool)
        for k, d in enumerate(data):
            try:
                i = int(d.get("index", k))
                logits = [float(x) for x in d["probs"]]
            except (AttributeError, KeyError, TypeError, ValueError):
                raise ModelError(f"served RM at {self.root_url}/classify: result {k} has no list 'probs'",
                                 "Served RM") from None
            if not 0 <= i < len(ids) or len(logits) not in (1, 2):
                raise ModelError(f"served RM at {self.root_url}/classify: result {k}: index {i}, {len(logits)} "
                                 "logits (a reward model has 1, or 2: reward = logit[1] - logit[0])", "Served RM")
            out[i] = logits[0] if len(logits) == 1 else logits[1] - logits[0]
            seen[i] = True
        if not seen.all():  # a NaN reward is the model's answer: the study loop names it
            raise ModelError(f"served RM at {self.root_url}/classify: results missing for some inputs", "Served RM")
        return out

    # -- scoring ---------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        rec = self.rm.record()
        rec.update(path_or_hub_id=f"{self.url}#{self.served_model}", dtype="server", device="vllm-server",
                   token_budget=None)
        rec["settings"] = {**rec["settings"], "engine": "vllm-server", "served_model": self.served_model,
                           "served_root": self.root, "max_model_len": self.max_model_len,
                           "tokenizer": self.tokenizer_spec, "dtype": "server"}
        return rec

    def _score_chunk(self, chunk: pd.DataFrame, *, per_request: int | None = None) -> pd.DataFrame:
        enc = self.rm.encode(chunk)
        lengths = enc.lengths
        order = np.argsort(-lengths, kind="stable")  # similar lengths in one request
        step = per_request or self.batch_texts
        groups = [order[s:s + step] for s in range(0, len(order), step)]
        rewards = np.empty(len(chunk))
        with ThreadPoolExecutor(min(self.parallel_requests, len(groups)) or 1, thread_name_prefix="rmtui-vllm") as ex:
            for g, r in zip(groups, ex.map(lambda g: self._classify([list(map(int, enc.ids[i])) for i in g]), groups)):
                rewards[g] = r
        return pd.DataFrame({"text_id": chunk["text_id"].to_numpy(), "reward": rewards,
                             "truncated": enc.truncated, "n_tokens": lengths.astype(np.int64)})

    def _iter_chunk(self, chunk: pd.DataFrame) -> Iterator[pd.DataFrame]:
        """One result frame per request as it completes (committed one by one: a server that dies
        loses at most the requests in flight)."""
        from concurrent.futures import as_completed

        enc = self.rm.encode(chunk)
        lengths = enc.lengths
        order = np.argsort(-lengths, kind="stable")  # similar lengths in one request
        groups = [order[s:s + self.batch_texts] for s in range(0, len(order), self.batch_texts)]
        ids = chunk["text_id"].to_numpy()
        ex = ThreadPoolExecutor(min(self.parallel_requests, len(groups)) or 1, thread_name_prefix="rmtui-vllm")
        try:
            futs = {ex.submit(self._classify, [list(map(int, enc.ids[i])) for i in g]): g for g in groups}
            for f in as_completed(futs):
                g = futs[f]
                r = f.result()
                yield pd.DataFrame({"text_id": ids[g], "reward": r, "truncated": np.asarray(enc.truncated)[g],
                                    "n_tokens": lengths[g].astype(np.int64)})
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

    def iter_results(self, texts: pd.DataFrame, progress: Progress | None = None) -> Iterator[pd.DataFrame]:
        texts = _dedupe(texts)
        n, cs = len(texts), self.rm.settings.chunk_size
        if progress:
            progress(0, n)
        done = 0
        for s in range(0, n, cs):  # tokenized a chunk at a time; results yielded per request
            for out in self._iter_chunk(texts.iloc[s:s + cs]):
                done += len(out)
                if progress:
                    progress(done, n)
                yield out

    def score_frame(self, texts: pd.DataFrame, progress: Progress | None = None) -> pd.DataFrame:
        parts = list(self.iter_results(texts, progress))
        if not parts:
            return pd.DataFrame({"text_id": pd.Series(dtype=str), "reward": pd.Series(dtype=float),
                                 "truncated": pd.Series(dtype=bool), "n_tokens": pd.Series(dtype="int64")})
        return pd.concat(parts, ignore_index=True)

    def check_invariance(self, texts: pd.DataFrame) -> float:
        """Rewards of texts sent together vs one text per request (the server's batching)."""
        texts = _dedupe(texts)
        if not len(texts):
            return 0.0
        together = self._score_chunk(texts, per_request=len(texts))["reward"].to_numpy()
        alone = self._score_chunk(texts, per_request=1)["reward"].to_numpy()
        return float(np.max(np.abs(together - alone)))

    def stats(self) -> dict[str, int]:
        return {"token_budget": 0, "n_oom": 0, "n_retries": self.n_retries}

    def close(self) -> None:
        self._http.close()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date; None when absent or unreadable (then back-off)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(r) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    return str(body)[:200]


def served_backend_for(row, settings: ScoreSettings) -> "ServedBackend":
    """Rebuild the served RM of a study's ``models`` row (rescoring rewrites), same model id or an error."""
    import json

    rec = json.loads(row.settings or "{}")
    backend = ServedBackend(row.path_or_hub_id, settings, name=row.name, tokenizer=rec.get("tokenizer"))
    if backend.model_id != row.model_id:
        backend.close()
        raise RmtuiError(f"{row.path_or_hub_id}: the served model changed since it was scored as {row.name!r}; "
                         "score it again with rmtui score", "Model changed")
    return backend
