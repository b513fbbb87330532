"""A small client for OpenAI-compatible chat endpoints (vLLM, Ollama, llama.cpp, hosted APIs).

Shared by the LLM labeler (``analysis/features/llm_labeler.py``) and the LLM rewriter. Stable API::

    client = ChatClient(base_url, model, api_key_env="OPENAI_API_KEY", timeout=60, max_retries=4,
                        concurrency=8, study=None, purpose="")
    result = client.chat(messages, json_mode=False, temperature=0.0, max_tokens=None, text_id=None,
                         validate=None)            # -> ChatResult
    for job, outcome in client.map(jobs, fn):      # bounded concurrency, results as they complete
        ...                                        # outcome: fn's return value or the exception it raised

* ``base_url``: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended;
  a URL that already ends in ``/chat/completions`` is used as is; a bare ``http://host:port`` with no
  path gets ``/v1``; any other path is kept as given).
* The API key is read from the environment variable ``api_key_env`` when the client is built and sent
  only as the ``Authorization: Bearer`` header. It is never stored in the study, never logged, never
  put into an exception message (any text that would be stored is scrubbed of it). No key set: no header
  (local servers need none).
* Retries (up to ``max_retries`` retries after the first attempt): HTTP 429 (waits ``Retry-After``
  seconds when the header is given, else exponential back-off), 5xx, 408, timeouts, connection errors,
  and answers rejected by ``validate`` (invalid JSON, missing keys ...). Back-off is
  ``backoff_base * 2**attempt`` plus up to 25 % jitter, capped at ``backoff_max``; ``Retry-After`` is
  capped at ``retry_after_max``. Other 4xx (400, 401, 404) fail at once: retrying cannot help.
* Every attempt is one row in the study's ``llm_calls`` table (when ``study`` is given): request id,
  purpose, endpoint, model, text id, attempt, status (``ok``, ``http_429``, ``http_500``, ``timeout``,
  ``connect_error``, ``invalid_answer``, ``http_400`` ...), HTTP status, latency, token counts, error.
* After the last attempt :class:`ChatError` (an :class:`~analysis.errors.EndpointError`) is raised
  with ``reason`` (the last attempt's status and message) and ``attempts``.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import httpx

from analysis.errors import EndpointError


@dataclass
class ChatResult:
    text: str                       # the assistant message content
    request_id: str                 # the server's response id (or x-request-id header, or ours)
    latency_s: float                # of the successful attempt
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int = 1               # attempts it took (1 = first try)
    parsed: Any = None              # what ``validate`` returned, when given
    model: str = ""


@dataclass
class Job:
    """One unit of work for :meth:`ChatClient.map`: ``key`` identifies it (e.g. a text id)."""

    key: Any
    messages: list[dict] = field(default_factory=list)
    text_id: str | None = None
    payload: Any = None             # anything the caller's ``fn`` needs


class AnswerError(ValueError):
    """Raised by a ``validate`` callable: the answer is unusable (retried like a transient failure)."""

    def __init__(self, message: str, status: str = "invalid_answer") -> None:
        super().__init__(message)
        self.status = status


class ChatError(EndpointError):
    """The endpoint did not give a usable answer within the allowed attempts."""

    def __init__(self, message: str, reason: str, attempts: int, status: str = "") -> None:
        super().__init__(message, "LLM endpoint")
        self.reason = reason
        self.attempts = attempts
        self.status = status


RETRYABLE_HTTP = {408, 409, 425, 429}

#: where the endpoint's base URL is read from, first set wins: the README's name, the name earlier
#: versions read, the OpenAI SDK's name
ENDPOINT_ENV_VARS = ("RMTUI_LLM_BASE_URL", "RMTUI_LLM_ENDPOINT", "OPENAI_BASE_URL")
MODEL_ENV_VARS = ("RMTUI_LLM_MODEL",)


def endpoint_from_env(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The LLM endpoint's (base URL, model name) from the environment; None where unset.

    The one place the app, ``rmtui rewrite`` and ``rmtui featurize`` read them from."""
    env = os.environ if environ is None else environ

    def first(names: tuple[str, ...]) -> str | None:
        return next((env[n] for n in names if env.get(n)), None)

    return first(ENDPOINT_ENV_VARS), first(MODEL_ENV_VARS)


_KEY_LIKE = re.compile(r"(?i)^(sk|pk|rk|hf|gsk|xai|ghp|gho|github_pat|glpat|AKIA|AIza)[-_]|^sk[A-Za-z0-9]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_PARAM = re.compile(r"(?i)(key|token|secret|password|passwd|sig|signature|auth)")


def redact_url(url: str) -> str:
    """``url`` as it may be stored or shown: a user:password in it and the values of query parameters
    named like key/token/secret become ``[redacted]`` (``http://user:sk-...@host`` was stored as is)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "[redacted: not a URL]"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "[redacted]@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        q = [(k, "[redacted]" if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(q, safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_api_key_env(name: str | None) -> None:
    """Refuse a key given where the *name* of its environment variable belongs (``api_key_env = "sk-..."``
    was stored in featurizers.config and the run went on without auth). The message shows no more of it
    than its first 3 characters."""
    if not name:
        return
    if not _ENV_NAME.match(name) or _KEY_LIKE.match(name) or (len(name) >= 32 and any(c.isdigit() for c in name)
                                                              and any(c.islower() for c in name)):
        raise EndpointError(f"api_key_env {name[:3]}…: looks like an API key, not the name of an environment "
                            "variable; put the key in a variable (export OPENAI_API_KEY=...) and give its name "
                            "(--api-key-env OPENAI_API_KEY). Nothing was stored or sent.", "API key")


def is_local_url(url: str) -> bool:
    """Loopback, private or link-local host (a local vLLM/Ollama needs no key)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").strip("[]")
    if host in ("localhost", "") or host.endswith(".local") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def key_warning(url: str, api_key_env: str | None, *, explicit: bool = True) -> str | None:
    """A warning when a remote endpoint is used and the named key variable is not set."""
    if not api_key_env or os.environ.get(api_key_env) or is_local_url(url or ""):
        return None
    if not explicit:
        return None
    return (f"{api_key_env} is not set: requests to {redact_url(url)} go without an API key "
            "(set it, or --api-key-env NAME for another variable)")


def normalise_base_url(base_url: str) -> str:
    url = (base_url or "").strip().rstrip("/")
    if not url:
        raise EndpointError("no endpoint given: pass --endpoint URL (e.g. http://127.0.0.1:8000/v1)")
    if not url.startswith(("http://", "https://")):
        raise EndpointError(f"endpoint {url!r} must start with http:// or https://")
    if url.endswith("/chat/completions"):
        return url
    if "/" not in url.split("//", 1)[1]:      # bare scheme://host[:port]: the usual /v1 root
        url += "/v1"
    return url + "/chat/completions"


class ChatClient:
    """Thread-safe client for ``POST {base_url}/chat/completions``; see the module docstring."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60,
                 max_retries: int = 4, concurrency: int = 8, study=None, purpose: str = "",
                 backoff_base: float = 1.0, backoff_max: float = 30.0, retry_after_max: float = 120.0,
                 extra_body: dict | None = None) -> None:
        if not model:
            raise EndpointError("no model given: pass --model NAME (the name the endpoint serves)")
        check_api_key_env(api_key_env)
        if not float(timeout) > 0:
            raise EndpointError(f"timeout {timeout}: must be more than 0 seconds")
        self.url = normalise_base_url(base_url)
        self.record_url = redact_url(self.url)  # what is stored (llm_calls.endpoint) and shown
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self._key = os.environ.get(api_key_env) or None if api_key_env else None
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.concurrency = max(1, int(concurrency))
        self.study = study
        self.purpose = purpose
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.retry_after_max = float(retry_after_max)
        self.extra_body = dict(extra_body or {})
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        limits = httpx.Limits(max_connections=self.concurrency + 2, max_keepalive_connections=self.concurrency + 2)
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout), limits=limits)
        self._log_lock = threading.Lock()
        self.n_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    # -- public ----------------------------------------------------------------------------------
    @property
    def has_key(self) -> bool:
        return self._key is not None

    def describe(self) -> dict:
        """What may be recorded about this client (endpoint, model, the env var's *name*; no key)."""
        return {"endpoint": self.record_url, "model": self.model, "api_key_env": self.api_key_env,
                "timeout": self.timeout, "max_retries": self.max_retries, "concurrency": self.concurrency}

    def close(self) -> None:
        self._http.close()

    def probe(self) -> None:
        """One cheap request before any work (``GET .../models``): an endpoint nobody answers at is an
        :class:`EndpointError` naming it, at once (every text used to fail after 5 attempts each: 19 s for 4
        texts, minutes for 120). Any HTTP answer, even 404, counts as reachable; nothing is logged."""
        probe_url = self.url.rsplit("/chat/completions", 1)[0] + "/models"
        try:
            self._http.get(probe_url, timeout=httpx.Timeout(min(self.timeout, 10.0)))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as e:
            why = self._scrub(str(e)) or type(e).__name__
            raise EndpointError(f"{self.record_url}: cannot connect ({why}); nothing was sent. Is the server "
                                "running and is --endpoint right?", "LLM endpoint unreachable") from None
        except httpx.HTTPError:
            pass  # it answered something (or was slow): the calls will report what is wrong

    def __enter__(self) -> "ChatClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chat(self, messages: list[dict], *, json_mode: bool = False, temperature: float = 0.0,
             max_tokens: int | None = None, text_id: str | None = None,
             validate: Callable[[str], Any] | None = None, cancel: threading.Event | None = None) -> ChatResult:
        """One chat completion with retries. ``validate(text)`` may return a parsed value (kept in
        ``ChatResult.parsed``) or raise :class:`AnswerError` (or ValueError) to have the call retried."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        body.update(self.extra_body)
        last_reason, last_status = "", ""
        attempts = 0
        for attempt in range(self.max_retries + 1):
            if cancel is not None and cancel.is_set():
                break
            attempts = attempt + 1
            wait_s: float | None = None
            t0 = time.perf_counter()
            log = {"call_id": uuid.uuid4().hex, "request_id": None, "text_id": text_id, "attempt": attempts,
                   "http_status": None, "prompt_tokens": None, "completion_tokens": None, "error": None}
            try:
                resp = self._http.post(self.url, json=body)
                latency = time.perf_counter() - t0
                log["latency_s"] = latency
                log["http_status"] = resp.status_code
                log["request_id"] = resp.headers.get("x-request-id")
                if resp.status_code != 200:
                    status = f"http_{resp.status_code}"
                    msg = f"HTTP {resp.status_code}: {self._scrub(resp.text[:300])}"
                    retryable = resp.status_code in RETRYABLE_HTTP or resp.status_code >= 500
                    if resp.status_code == 429:
                        wait_s = _retry_after(resp.headers.get("retry-after"))
                        if wait_s is not None:
                            wait_s = min(wait_s, self.retry_after_max)
                    self._log(log, status, msg)
                    last_reason, last_status = msg, status
                    if not retryable:
                        break
                else:
                    try:
                        data = resp.json()
                        content = data["choices"][0]["message"]["content"]
                        if not isinstance(content, str):
                            raise TypeError("message content is not a string")
                    except (ValueError, KeyError, IndexError, TypeError) as e:
                        raise AnswerError(f"not a chat completion response ({e})", "bad_response") from e
                    usage = data.get("usage") or {}
                    log["request_id"] = data.get("id") or log["request_id"]
                    log["prompt_tokens"] = usage.get("prompt_tokens")
                    log["completion_tokens"] = usage.get("completion_tokens")
                    parsed = validate(content) if validate is not None else None
                    self._log(log, "ok", None)
                    return ChatResult(content, log["request_id"] or log["call_id"], latency, log["prompt_tokens"],
                                      log["completion_tokens"], attempts, parsed, data.get("model") or self.model)
            except (AnswerError, ValueError) as e:
                status = getattr(e, "status", "invalid_answer")
                msg = f"{status}: {self._scrub(str(e))[:300]}"
                log.setdefault("latency_s", time.perf_counter() - t0)
                self._log(log, status, msg)
                last_reason, last_status = msg, status
            except httpx.TimeoutException as e:
                log["latency_s"] = time.perf_counter() - t0
                msg = f"timeout after {self.timeout:g} s ({type(e).__name__})"
                self._log(log, "timeout", msg)
                last_reason, last_status = msg, "timeout"
            except httpx.HTTPError as e:
                log["latency_s"] = time.perf_counter() - t0
                msg = f"{type(e).__name__}: {self._scrub(str(e))[:300]}"
                self._log(log, "connect_error", msg)
                last_reason, last_status = msg, "connect_error"
            if attempt < self.max_retries:
                if wait_s is None:
                    wait_s = min(self.backoff_max, self.backoff_base * (2 ** attempt))
                    wait_s += random.uniform(0, 0.25 * wait_s)
                if cancel is not None:
                    if cancel.wait(wait_s):
                        break
                else:
                    time.sleep(wait_s)
        raise ChatError(f"{self.url} ({self.model}): no usable answer after {attempts} attempt(s); last: {last_reason}",
                        last_reason or "cancelled", attempts, last_status or "cancelled")

    def map(self, jobs: Iterable[Job], fn: Callable[[Job], Any] | None = None, *,
            cancel: threading.Event | None = None) -> Iterator[tuple[Job, Any]]:
        """Run ``fn(job)`` for every job on at most ``concurrency`` threads; yield ``(job, outcome)`` in
        completion order, where outcome is fn's return value or the exception it raised. Default
        ``fn``: ``self.chat(job.messages, text_id=job.text_id)``. Setting ``cancel`` (or closing the
        generator) stops submitting new jobs; jobs in flight finish and are yielded."""
        if fn is None:
            fn = lambda job: self.chat(job.messages, text_id=job.text_id, cancel=cancel)  # noqa: E731
        it = iter(jobs)
        inflight: dict[Future, Job] = {}
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="chat") as ex:
            try:
                while True:
                    while len(inflight) < self.concurrency and not (cancel is not None and cancel.is_set()):
                        job = next(it, None)
                        if job is None:
                            break
                        inflight[ex.submit(fn, job)] = job
                    if not inflight:
                        return
                    done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = inflight.pop(fut)
                        exc = fut.exception()
                        yield job, (exc if exc is not None else fut.result())
            except BaseException:
                # Ctrl-C or the consumer closed us: in-flight calls stop at their next attempt
                if cancel is not None:
                    cancel.set()
                raise
            finally:
                for fut in inflight:
                    fut.cancel()

    # -- internals -------------------------------------------------------------------------------
    def _scrub(self, s: str) -> str:
        if self._key and s:
            s = s.replace(self._key, "[redacted]")
        return s

    def _log(self, log: dict, status: str, error: str | None) -> None:
        with self._log_lock:
            self.n_calls += 1
            self.prompt_tokens += int(log.get("prompt_tokens") or 0)
            self.completion_tokens += int(log.get("completion_tokens") or 0)
        if self.study is None:
            return
        from analysis.store.core import now
        from analysis.store.features import log_llm_calls

        row = dict(log)
        row.update({"purpose": self.purpose, "endpoint": self.record_url, "model": self.model, "status": status,
                    "error": self._scrub(error) if error else None, "created_at": now()})
        with self._log_lock:
            log_llm_calls(self.study, [row])


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds (fractions accepted) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        dt = parsedate_to_datetime(value)
        import datetime as _dt

        return max(0.0, (dt - _dt.datetime.now(dt.tzinfo or _dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def parse_json_object(text: str) -> dict:
    """The first JSON object in a model's answer (tolerates ```json fences and prose around it).

    Raises :class:`AnswerError` with status ``invalid_json`` when there is none."""
    s = (text or "").strip()
    if s.startswith("```"):
        s = s.strip("`")
        if s[:4].lower() == "json":
            s = s[4:]
    try:
        obj = json.loads(s)
    except ValueError:
        start, end = s.find("{"), s.rfind("}")
        if start < 0 or end <= start:
            raise AnswerError(f"no JSON object in the answer: {text[:120]!r}", "invalid_json") from None
        try:
            obj = json.loads(s[start:end + 1])
        except ValueError as e:
            raise AnswerError(f"invalid JSON ({e}): {text[:120]!r}", "invalid_json") from None
    if not isinstance(obj, dict):
        raise AnswerError(f"expected a JSON object, got {type(obj).__name__}", "invalid_json")
    return obj
