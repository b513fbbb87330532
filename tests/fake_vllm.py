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
"""

from __future__ import annotations

import json
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
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeVLLM":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

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
                    data.append({"index": i, "label": "LABEL_0", "probs": logits, "num_classes": len(logits)})
                n_tok = sum(len(s) for s in seqs)
                self._send(200, {"id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                                 "model": server.served_name, "data": data,
                                 "usage": {"prompt_tokens": n_tok, "total_tokens": n_tok, "completion_tokens": 0,
                                           "prompt_tokens_details": None}})

        return Handler
