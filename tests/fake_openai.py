"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (http.server in a thread).

It speaks ``POST /v1/chat/completions`` and answers the labeler's prompt with a JSON object built
from the keys listed in the system message. What it does for a request is scripted by a marker in
the assistant reply being labelled: ``[[429,500,good]]`` means the 1st request for that text gets
HTTP 429, the 2nd HTTP 500, the 3rd a good answer (the last behaviour repeats). Behaviours:

``good``       a valid JSON object with every key
``malformed``  content that is not JSON
``missing``    a JSON object without the first key
``badvalue``   the first key with a value of the wrong type
``429``        HTTP 429 with ``Retry-After: <retry_after>``
``500``        HTTP 500
``400``        HTTP 400 (not retryable)
``slow``       sleeps ``slow_s`` seconds (beyond the client's timeout), then answers well

``delay_s`` delays every other answer (to interrupt a run in the middle).

Every request is logged in ``server.requests`` (time, text marker key, behaviour, model, whether an
Authorization header came and its value, the reply snippet) so tests can assert who asked for what.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_MARK = re.compile(r"\[\[([\w,]+)\]\]")
_KEY_LINE = re.compile(r'^- "(\w+)" \((.*?)\):', re.M)
_REPLY = re.compile(r"The assistant's last reply:\n<<<\n(.*?)\n>>>", re.S)


def default_answer(model: str, keys: list[tuple[str, str]], reply: str) -> dict:
    """Deterministic labels from the reply text (and the model name, so two models can disagree)."""
    h = zlib.crc32(reply.encode())
    out = {}
    for i, (name, typ) in enumerate(keys):
        if typ.startswith("true or false"):
            v = bool((h >> i) & 1)
            if model.endswith("-b") and name == "helpful":
                v = not v if (h >> 7) & 1 else v     # the second model disagrees on about half the helpful labels
            out[name] = v
        elif typ.startswith("one of"):
            vals = [int(x) for x in typ[len("one of "):].split(", ")]
            out[name] = vals[h % len(vals)]
        else:
            allowed = json.loads("[" + typ[len("a JSON array of zero or more of: "):].replace("; ", ", ") + "]")
            out[name] = [allowed[h % len(allowed)]]
    return out


class FakeOpenAI:
    def __init__(self, *, retry_after: str = "1", slow_s: float = 1.5, answer=default_answer,
                 delay_s: float = 0.0, port: int = 0, default: str = "good") -> None:
        self.default = default  # the behaviour of a reply without a [[...]] marker
        self.retry_after = retry_after
        self.delay_s = delay_s
        self.slow_s = slow_s
        self.answer = answer
        self.requests: list[dict] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                server._handle(self, body)

            def _send(self, code, obj, headers=None, raw: bytes | None = None):
                data = raw if raw is not None else json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True  # a test may serve a port it found closed a moment ago
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the scripted behaviour ------------------------------------------------------------------
    def _handle(self, h, body: dict) -> None:
        msgs = body.get("messages") or []
        system = next((m["content"] for m in msgs if m.get("role") == "system"), "")
        user = next((m["content"] for m in msgs if m.get("role") == "user"), "")
        m = _REPLY.search(user)
        reply = m.group(1) if m else user
        mark = _MARK.search(reply)
        script = mark.group(1).split(",") if mark else [self.default]
        with self._lock:
            k = self._counts.get(reply, 0)
            self._counts[reply] = k + 1
            behaviour = script[min(k, len(script) - 1)]
            self.requests.append({"t": time.monotonic(), "reply": reply, "attempt": k + 1, "behaviour": behaviour,
                                  "model": body.get("model"), "auth": h.headers.get("Authorization")})
        keys = [(n, t) for n, t in _KEY_LINE.findall(system)]
        if behaviour == "429":
            return h._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
        if behaviour == "500":
            return h._send(500, {"error": {"message": "internal error"}})
        if behaviour == "400":
            return h._send(400, {"error": {"message": "bad request"}})
        if behaviour == "slow":
            time.sleep(self.slow_s)
        elif self.delay_s:
            time.sleep(self.delay_s)
        ans = self.answer(body.get("model", ""), keys, reply)
        if behaviour == "malformed":
            content = "Sure! helpful: yes, harmless: yes {not json"
        elif behaviour == "missing":
            ans.pop(keys[0][0], None)
            content = json.dumps(ans)
        elif behaviour == "badvalue":
            ans[keys[0][0]] = "perhaps"
            content = json.dumps(ans)
        else:
            content = json.dumps(ans)
        h._send(200, {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(system + user) // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": (len(system + user) + len(content)) // 4},
        })

    # -- helpers for assertions ------------------------------------------------------------------
    def replies_asked(self) -> list[str]:
        with self._lock:
            return [r["reply"] for r in self.requests]
