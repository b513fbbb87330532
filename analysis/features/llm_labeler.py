"""The LLM labeler: asks an OpenAI-compatible chat endpoint for one JSON object of labels per text.

The label configuration (default: ``analysis/resources/labels_default.toml``, the 19 properties of the
SEAL paper in rmtui's words) names each key, its type (binary | ordinal | list), allowed values, role
and description. Answers are validated (every key present, every value of its type and allowed);
an invalid answer is retried like a failed call (see :mod:`analysis.llm.client`). A text that still has no
valid answer after the retries is recorded in ``label_failures`` with the reason; a rerun asks only
for texts that hold no labels yet (failed ones are asked again unless ``skip_failed``).

Stored as featurizer ``llm:<model>``; its recorded config holds endpoint, model, the *name* of the
key's environment variable and the label configuration, never the key itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from analysis.errors import InputError, RmtuiError
from analysis.llm.client import (AnswerError, ChatClient, ChatError, Job, check_api_key_env, endpoint_from_env,
                          parse_json_object, redact_url)
from analysis.features.base import Chunk, FeatureDef, Featurizer

PROMPT_VERSION = "1"
TYPES = ("binary", "ordinal", "list")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}
_SENTIMENT_WORDS = {"negative": -1, "neutral": 0, "positive": 1}


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")


@dataclass
class LabelSpec:
    name: str
    type: str
    role: str = "spoiler"
    description: str = ""
    values: list = field(default_factory=list)
    about: str = "response"

    def feature_names(self) -> list[str]:
        if self.type == "list":
            return [f"{self.name}:{slug(v)}" for v in self.values]
        return [self.name]


@dataclass
class LabelConfig:
    features: list[LabelSpec]
    preamble: str = ""
    source: str = "default"

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, config: "str | Path | dict | LabelConfig | None" = None) -> "LabelConfig":
        """From a TOML path, a dict (as recorded in the study) or None (the default file)."""
        if isinstance(config, LabelConfig):
            return config
        if config is None:
            text = resources.files("analysis.resources").joinpath("labels_default.toml").read_text("utf-8")
            return cls.from_dict(tomllib.loads(text), "default")
        if isinstance(config, dict):
            return cls.from_dict(config, config.get("source", "recorded"))
        path = Path(config)
        if not path.exists():
            raise InputError(f"{path}: label config file not found", "Label config")
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not valid TOML: {e}", "Label config") from e
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "LabelConfig":
        feats = data.get("feature") or data.get("features")
        if not isinstance(feats, list) or not feats:
            raise InputError(f"{source}: no [[feature]] entries", "Label config")
        specs, seen = [], set()
        for i, f in enumerate(feats, start=1):
            where = f"{source}: feature #{i}"
            if not isinstance(f, dict):
                raise InputError(f"{where}: expected a table", "Label config")
            name = f.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
                raise InputError(f"{where}: field 'name' must be an identifier (letters, digits, _), got {name!r}",
                                 "Label config")
            where = f"{source}: feature {name!r}"
            if name in seen:
                raise InputError(f"{where}: defined twice", "Label config")
            seen.add(name)
            typ = f.get("type", "binary")
            if typ not in TYPES:
                raise InputError(f"{where}: field 'type' must be one of {', '.join(TYPES)}, got {typ!r}", "Label config")
            role = f.get("role", "spoiler")
            if role not in ("target", "spoiler"):
                raise InputError(f"{where}: field 'role' must be target or spoiler, got {role!r}", "Label config")
            values = list(f.get("values") or [])
            if typ == "ordinal" and (not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
                raise InputError(f"{where}: an ordinal feature needs 'values', a list of integers", "Label config")
            if typ == "list" and (not values or not all(isinstance(v, str) for v in values)):
                raise InputError(f"{where}: a list feature needs 'values', a list of strings", "Label config")
            about = f.get("about", "response")
            if about not in ("response", "conversation"):
                raise InputError(f"{where}: field 'about' must be response or conversation", "Label config")
            specs.append(LabelSpec(name, typ, role, str(f.get("description", "")), values, about))
        preamble = (data.get("prompt") or {}).get("preamble", "") if isinstance(data.get("prompt"), dict) else data.get("preamble", "")
        return cls(specs, preamble or "", source)

    def to_dict(self) -> dict:
        return {"source": self.source, "prompt": {"preamble": self.preamble},
                "feature": [{"name": s.name, "type": s.type, "role": s.role, "description": s.description,
                             "values": s.values, "about": s.about} for s in self.features]}

    def fingerprint(self) -> str:
        d = self.to_dict()
        d.pop("source")
        blob = json.dumps([PROMPT_VERSION, d], sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=6).hexdigest()

    # -- definitions, prompt, validation -----------------------------------------------------------
    def feature_defs(self) -> list[FeatureDef]:
        out = []
        for s in self.features:
            if s.type == "list":
                for v in s.values:
                    out.append(FeatureDef(f"{s.name}:{slug(v)}", "binary", s.role, False,
                                          f"1 if the labeler listed {v!r} under {s.name}: {s.description}"))
            else:
                out.append(FeatureDef(s.name, s.type, s.role, False, s.description))
        return out

    def key_lines(self) -> str:
        lines = []
        for s in self.features:
            if s.type == "binary":
                t = "true or false"
            elif s.type == "ordinal":
                t = "one of " + ", ".join(str(v) for v in s.values)
            else:
                t = "a JSON array of zero or more of: " + "; ".join(json.dumps(v) for v in s.values)
            lines.append(f'- "{s.name}" ({t}): {s.description}')
        return "\n".join(lines)

    def messages(self, context: str, response: str) -> list[dict]:
        system = (self.preamble.strip() + "\n\n" if self.preamble else "") + (
            "Answer with ONE JSON object and nothing else. It must have exactly these keys:\n" + self.key_lines())
        convo = (context or "").strip()
        user = (f"Conversation so far:\n<<<\n{convo}\n>>>\n\nThe assistant's last reply:\n<<<\n{response or ''}\n>>>\n\n"
                "Return the JSON object.")
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def dummy_answer(self) -> str:
        d: dict[str, Any] = {}
        for s in self.features:
            d[s.name] = True if s.type == "binary" else (s.values[0] if s.type == "ordinal" else s.values[:2])
        return json.dumps(d)

    def parse(self, text: str) -> dict[str, float]:
        """Validate an answer; return feature name -> value. Raises :class:`AnswerError`."""
        obj = parse_json_object(text)
        missing = [s.name for s in self.features if s.name not in obj]
        if missing:
            raise AnswerError(f"missing keys: {', '.join(missing)}", "missing_keys")
        out: dict[str, float] = {}
        for s in self.features:
            v = obj[s.name]
            if s.type == "binary":
                if isinstance(v, bool):
                    out[s.name] = float(v)
                elif isinstance(v, (int, float)) and v in (0, 1):
                    out[s.name] = float(v)
                elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
                    out[s.name] = 1.0 if v.strip().lower() in _TRUE else 0.0
                else:
                    raise AnswerError(f"key {s.name!r}: expected true/false, got {v!r}", "bad_value")
            elif s.type == "ordinal":
                if isinstance(v, str) and s.name == "sentiment" and v.strip().lower() in _SENTIMENT_WORDS:
                    v = _SENTIMENT_WORDS[v.strip().lower()]
                try:
                    iv = int(v) if not isinstance(v, bool) and float(v) == int(float(v)) else None
                except (TypeError, ValueError):
                    iv = None
                if iv is None or iv not in s.values:
                    raise AnswerError(f"key {s.name!r}: expected one of {s.values}, got {v!r}", "bad_value")
                out[s.name] = float(iv)
            else:
                if isinstance(v, str):
                    v = [v] if v else []
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise AnswerError(f"key {s.name!r}: expected a list of strings, got {v!r}", "bad_value")
                chosen = {slug(x) for x in v}
                for a in s.values:  # values outside the allowed list are ignored (matched by slug)
                    out[f"{s.name}:{slug(a)}"] = 1.0 if slug(a) in chosen else 0.0
        return out


class LLMLabeler(Featurizer):
    """Featurizer ``llm:<model>``: one chat call per text through :class:`~analysis.llm.client.ChatClient`."""

    cheap = False
    offline = False
    chunk_size = 1

    def __init__(self, endpoint: str | None = None, model: str | None = None, *, study=None,
                 api_key_env: str = "OPENAI_API_KEY", config=None, concurrency: int = 8, timeout: float = 60,
                 max_retries: int = 4, backoff_base: float = 1.0, json_mode: bool = True, max_tokens: int | None = None,
                 price_per_1k_prompt: float | None = None, price_per_1k_completion: float | None = None,
                 confirm_above_usd: float = 5.0, confirm_above_tokens: int = 2_000_000, name: str | None = None,
                 purpose: str = "label", base_url: str | None = None) -> None:
        env_url, env_model = endpoint_from_env()
        endpoint = endpoint or base_url or env_url  # base_url: the OpenAI client's name, as the LLM rewriter takes
        model = model or env_model
        if not endpoint:
            raise RmtuiError("the llm labeler needs --endpoint URL (an OpenAI-compatible API, e.g. "
                             "http://127.0.0.1:8000/v1 for vLLM; or RMTUI_LLM_BASE_URL)", "LLM labeler")
        if not model:
            raise RmtuiError("the llm labeler needs --model NAME (the model the endpoint serves; or RMTUI_LLM_MODEL)",
                             "LLM labeler")
        check_api_key_env(api_key_env)  # before anything is registered or stored
        self.endpoint, self.model, self.study = endpoint, model, study
        self.api_key_env = api_key_env
        self.labels = LabelConfig.load(config)
        self.name = name or f"llm:{model}"
        self.version = f"{PROMPT_VERSION}-{self.labels.fingerprint()}"
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff_base, self.json_mode, self.max_tokens = backoff_base, json_mode, max_tokens
        self.price_prompt, self.price_completion = price_per_1k_prompt, price_per_1k_completion
        self.confirm_above_usd, self.confirm_above_tokens = confirm_above_usd, confirm_above_tokens
        self.purpose = purpose
        self.client: ChatClient | None = None

    def feature_defs(self) -> list[FeatureDef]:
        return self.labels.feature_defs()

    def config(self) -> dict:
        return {"spec": self.name, "endpoint": redact_url(self.endpoint), "model": self.model, "api_key_env": self.api_key_env,
                "prompt_version": PROMPT_VERSION, "label_config": self.labels.to_dict(), "json_mode": self.json_mode,
                "concurrency": self.concurrency}

    def estimate(self, texts: pd.DataFrame) -> dict:
        """Rough token and cost estimate (4 characters per token) before any request."""
        sys_chars = len(self.labels.messages("", "")[0]["content"]) + len(self.labels.messages("", "")[1]["content"])
        chars = texts["context"].fillna("").str.len().sum() + texts["response"].fillna("").str.len().sum()
        prompt = int((chars + sys_chars * len(texts)) / 4) + 8 * len(texts)
        completion = int(len(self.labels.dummy_answer()) / 4) * len(texts)
        cost = None
        if self.price_prompt is not None or self.price_completion is not None:
            cost = prompt / 1000 * (self.price_prompt or 0) + completion / 1000 * (self.price_completion or 0)
        ask = (cost is not None and cost > self.confirm_above_usd) or (prompt + completion > self.confirm_above_tokens)
        return {"texts": int(len(texts)), "prompt_tokens": prompt, "completion_tokens": completion,
                "cost_usd": cost, "ask": bool(ask), "model": self.model, "endpoint": redact_url(self.endpoint)}

    def _client(self) -> ChatClient:
        if self.client is None:
            self.client = ChatClient(self.endpoint, self.model, api_key_env=self.api_key_env, timeout=self.timeout,
                                     max_retries=self.max_retries, concurrency=self.concurrency, study=self.study,
                                     purpose=self.purpose, backoff_base=self.backoff_base)
        return self.client

    def featurize_iter(self, texts: pd.DataFrame, *, cancel: threading.Event | None = None) -> Iterator[Chunk]:
        client = self._client()
        if len(texts):
            client.probe()  # an unreachable endpoint stops here, with its name, before any text is asked
        jobs = (Job(key=r.text_id, text_id=r.text_id, messages=self.labels.messages(r.context, r.response))
                for r in texts.itertuples(index=False))

        def ask(job: Job):
            return client.chat(job.messages, json_mode=self.json_mode, temperature=0.0, max_tokens=self.max_tokens,
                               text_id=job.text_id, validate=self.labels.parse, cancel=cancel)

        gen = client.map(jobs, ask, cancel=cancel)
        try:
            for job, out in gen:
                if isinstance(out, ChatError):
                    if out.status == "cancelled":
                        continue
                    yield Chunk(_empty(), [(job.text_id, out.reason, out.attempts)], 1)
                elif isinstance(out, BaseException):
                    yield Chunk(_empty(), [(job.text_id, f"{type(out).__name__}: {out}"[:300], 1)], 1)
                else:
                    vals = out.parsed
                    yield Chunk(pd.DataFrame({"text_id": job.text_id, "name": list(vals), "value": list(vals.values())}),
                                [], 1)
        finally:
            gen.close()

    def featurize(self, texts: pd.DataFrame) -> pd.DataFrame:
        parts = [c.values for c in self.featurize_iter(texts) if len(c.values)]
        return pd.concat(parts, ignore_index=True) if parts else _empty()

    def report(self) -> dict:
        c = self.client
        if c is None:
            return {}
        return {"calls": c.n_calls, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"text_id": pd.Series([], dtype="object"), "name": pd.Series([], dtype="object"),
                         "value": pd.Series([], dtype="float64")})
