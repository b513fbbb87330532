"""A loopback HTTP server that follows vLLM's pooling API for sequence classifiers, backed by a real
(tiny) model: ``GET /v1/models`` and ``POST /classify`` (also ``/v1/classify``).

Schema (vLLM ``vllm/entrypoints/pooling/classify/protocol.py``): the request is ``{"model",
"input": str | list[str] | list[int] | list[list[int]], "use_activation": bool | None,
"truncate_prompt_tokens": int | None}``; the answer ``{"id", "object": "list", "created", "model",
"data": [{"index", "label", "probs", "num_classes"}], "usage": {"prompt_tokens", "total_tokens",
"completion_tokens": 0}}``. ``use_activation`` false gives raw logits in ``probs``; otherwise a
sigmoid (one label) or softmax. ``truncate_prompt_tokens=k`` keeps the last k tokens. Errors come
as vLLM's ``{"error": {"message", "type", "code"}}`` with status 400/404.

Each input is run alone through ``transformers`` (no padding), independent of rmtui's engine, so a
test can compare the client's rewards with the in-process engine's. Requests are kept in
``server.requests``.

Faults on a schedule (issue 25), for ``POST /classify``: ``fail_next`` (answers to give first);
``fail_rate`` (a seeded share of calls answered 500 or 429, alternately, the 429s with
``Retry-After: 0``); ``drop_next`` (calls whose connection is closed without an answer);
``nan_next`` / ``short_next`` (calls answered with NaN rewards / one result fewer than inputs);
``die_after`` (after that many answered calls the server stops listening: a dead server;
:meth:`restart` brings it back on the same port). ``n_faults`` counts the faults given.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeVLLM:
    def __init__(self, model_dir: str | Path, served_name: str = "tiny-rm", max_model_len: int = 512) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.served_name = served_name
        self.root = str(model_dir)
        self.max_model_len = max_model_len
        self.requests: list[dict] = []
        self.fail_next: list[tuple[int, str]] = []  # (status, message) answers to give first
        self.fail_rate = 0.0
        self.drop_next = 0
        self.nan_next = 0
        self.short_next = 0
        self.die_after: int | None = None
        self.n_answered = 0
        self.n_faults = 0
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.alive = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeVLLM":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def kill(self) -> None:
        """Stop listening (a dead server: the next connection is refused)."""
        if self.alive:
            self.alive = False
            self.httpd.shutdown()
            self.httpd.server_close()

    def restart(self) -> None:
        """Listen again on the same port (the server came back)."""
        self.kill()
        self.die_after = None
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.alive = True

    def _fault(self) -> str | None:
        """The fault this call gets, if any (one decision per call, under a lock)."""
        with self._fault_lock:
            if self.die_after is not None and self.n_answered >= self.die_after:
                return "die"
            if self.drop_next:
                self.drop_next -= 1
                self.n_faults += 1
                return "drop"
            if self.nan_next:
                self.nan_next -= 1
                self.n_faults += 1
                return "nan"
            if self.short_next:
                self.short_next -= 1
                self.n_faults += 1
                return "short"
            if self.fail_rate and self._rng.random() < self.fail_rate:
                self.n_faults += 1
                return "500" if self.n_faults % 2 else "429"
            self.n_answered += 1
            return None

    def logits(self, ids: list[int]):
        import torch

        with self._lock, torch.inference_mode():
            return self.model(input_ids=torch.tensor([ids])).logits[0].float().tolist()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error": {"message": message, "type": "BadRequestError", "code": status}})

            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/v1/models":
                    return self._error(404, f"no route {self.path}")
                self._send(200, {"object": "list", "data": [{
                    "id": server.served_name, "object": "model", "created": int(time.time()), "owned_by": "vllm",
                    "root": server.root, "parent": None, "max_model_len": server.max_model_len}]})

            def do_POST(self) -> None:
                if self.path not in ("/classify", "/v1/classify"):
                    return self._error(404, f"no route {self.path}")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({**body, "authorization": self.headers.get("Authorization")})
                if server.fail_next:
                    status, message = server.fail_next.pop(0)
                    return self._error(status, message)
                fault = server._fault()
                if fault == "die":  # the server process is gone: this connection and every later one
                    threading.Thread(target=server.kill, daemon=True).start()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return None
                if fault == "drop":  # connection closed without an answer
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return None
                if fault == "500":
                    return self._error(500, "Internal Server Error (scheduled)")
                if fault == "429":
                    raw = json.dumps({"error": {"message": "Too many requests", "code": 429}}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return None
                if body.get("model") not in (None, server.served_name):
                    return self._error(404, f"The model `{body.get('model')}` does not exist.")
                inp = body.get("input")
                if isinstance(inp, str) or (isinstance(inp, list) and inp and isinstance(inp[0], int)):
                    inp = [inp]
                if not isinstance(inp, list):
                    return self._error(400, "input must be a string, a list of strings or token ids")
                seqs = [server.tokenizer(x)["input_ids"] if isinstance(x, str) else list(x) for x in inp]
                k = body.get("truncate_prompt_tokens")
                if k is not None and k >= 0:
                    seqs = [s[-k:] if len(s) > k else s for s in seqs]  # left truncation: keep the last k
                if any(len(s) > server.max_model_len for s in seqs):
                    return self._error(400, f"This model's maximum context length is {server.max_model_len} tokens.")
                use_act = body.get("use_activation")
                data = []
                for i, s in enumerate(seqs):
                    logits = server.logits(s)
                    if use_act is not False:
                        import torch

                        t = torch.tensor(logits)
                        logits = (t.sigmoid() if len(logits) == 1 else t.softmax(-1)).tolist()
                    if fault == "nan":
                        logits = [float("nan")] * len(logits)
                    data.append({"index": i, "label": "LABEL_0", "probs": logits, "num_classes": len(logits)})
                if fault == "short":
                    data = data[:-1]
                n_tok = sum(len(s) for s in seqs)
                self._send(200, {"id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                                 "model": server.served_name, "data": data,
                                 "usage": {"prompt_tokens": n_tok, "total_tokens": n_tok, "completion_tokens": 0,
                                           "prompt_tokens_details": None}})

        return Handler
