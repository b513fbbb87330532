"""The LLM rewriter against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from analysis.errors import EndpointError, RmtuiError
from analysis.rewrite import RewriteError, make_rewriter
from analysis.rewrite.llm_rewriter import TARGETS, check_answer

CONTEXT = "\n\nHuman: How do I bake bread?"
GOOD = "Mix flour, water, salt and yeast, let the dough rise, then bake it."
REWRITE = "Combine flour, water, salt and yeast; allow the dough to rise; then put it in the oven."

# what the server answers, per marker found in the reply to rewrite: a list, one item per call
SCRIPTS = {
    "[good]": [REWRITE],
    "[empty-then-good]": ["   ", REWRITE],
    "[unchanged]": [None],            # None: echo the reply back
    "[rolebreak]": [REWRITE + "\n\nHuman: Thanks! And how long?\n\nAssistant: About an hour."],
    "[asuser]": ["Human: Can you tell me more about yeast?"],
    "[label]": ["Assistant: " + REWRITE],
    "[broken]": ["<<HTTP500>>"],
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # keep test output clean
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        user = body["messages"][-1]["content"]
        reply = user.split("Final reply to rewrite:\nAssistant: ", 1)[1].rsplit("\n\nWrite the rewritten", 1)[0]
        marker = next((m for m in SCRIPTS if m in reply), None)
        if marker is None:
            # real data: a reply whose length is a multiple of 3 always gets an empty answer
            answer = "" if len(reply) % 3 == 0 else "In other words, " + reply
        else:
            k = srv.calls.get(marker, 0)
            srv.calls[marker] = k + 1
            script = SCRIPTS[marker]
            answer = script[min(k, len(script) - 1)]
        if answer == "<<HTTP500>>":
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": "bad request"}')
            return
        if answer is None:
            answer = reply
        out = json.dumps({"id": f"req-{len(srv.requests)}", "object": "chat.completion", "model": body["model"],
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 10, "completion_tokens": 10}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests, srv.calls = [], {}
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def make(server, **kw):
    return make_rewriter("llm", endpoint=f"http://127.0.0.1:{server.server_port}/v1", model="m-test", **kw)


def test_good_answer_accepted_and_prompt_is_the_papers(server, monkeypatch):
    monkeypatch.setenv("RMTUI_TEST_KEY", "sk-secret-123")
    rw = make(server, api_key_env="RMTUI_TEST_KEY")
    res = rw.rewrite(CONTEXT, GOOD + " [good]", np.random.default_rng(0))
    assert res.new_response == REWRITE
    assert res.params == {} and res.notes == ""
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer sk-secret-123"
    system = req["body"]["messages"][0]["content"]
    for phrase in ("vocabulary and the grammar", "meaning, the intent and the intensity",
                   "keep that content", "no speaker labels"):
        assert phrase in system
    assert "Human: How do I bake bread?" in req["body"]["messages"][1]["content"]
    # the key is never part of what is recorded about the rewriter
    assert "sk-secret" not in rw.params_json() and "RMTUI_TEST_KEY" not in rw.params_json()


def test_targeted_instruction(server):
    rw = make(server, perturbation="more_positive")
    res = rw.rewrite(CONTEXT, GOOD + " [good]")
    assert res.params == {"target": "more_positive"}
    assert TARGETS["more_positive"] in server.requests[0]["body"]["messages"][0]["content"]
    free = make(server, target="make it rhyme")
    free.rewrite(CONTEXT, GOOD + " [good]")
    assert "make it rhyme" in server.requests[1]["body"]["messages"][0]["content"]
    assert json.loads(free.params_json())["target"] == "make it rhyme"


def test_empty_answer_is_retried(server):
    rw = make(server)
    res = rw.rewrite(CONTEXT, GOOD + " [empty-then-good]")
    assert res.new_response == REWRITE
    assert server.calls["[empty-then-good]"] == 2
    assert "empty" in res.notes and "attempt 2" in res.notes
    temps = [r["body"]["temperature"] for r in server.requests]
    assert temps[1] > temps[0]          # a retry is not asked at the same temperature


@pytest.mark.parametrize("marker,reason", [("[unchanged]", "unchanged"), ("[rolebreak]", "role_break"),
                                            ("[asuser]", "role_break")])
def test_bad_answers_rejected_with_reasons_after_bounded_attempts(server, marker, reason):
    rw = make(server, max_attempts=3)
    with pytest.raises(RewriteError) as ei:
        rw.rewrite(CONTEXT, GOOD + " " + marker)
    assert server.calls[marker] == 3
    assert len(ei.value.reasons) == 3 and all(reason in r for r in ei.value.reasons)
    assert isinstance(ei.value, RmtuiError)


def test_leading_label_is_removed(server):
    res = make(server).rewrite(CONTEXT, GOOD + " [label]")
    assert res.new_response == REWRITE and "label" in res.notes


def test_endpoint_errors_are_rmtui_errors(server):
    with pytest.raises(RmtuiError):
        make(server).rewrite(CONTEXT, GOOD + " [broken]")
    with pytest.raises(RmtuiError):
        make_rewriter("llm", model="m")           # no endpoint
    rw = make_rewriter("llm", endpoint="http://127.0.0.1:9/v1", model="m", timeout=2, max_attempts=1)
    with pytest.raises(RmtuiError):
        rw.rewrite(CONTEXT, GOOD)


def test_check_answer_unit():
    assert check_answer("  ", "x")[0].startswith("empty")
    assert check_answer("Same  WORDS here.", "same words here.")[0].startswith("unchanged")
    assert check_answer("Fine.\nUser: hi", "Okay.")[0].startswith("role_break")
    assert check_answer('"Quoted answer."', "An answer.")[1] == "Quoted answer."
    assert check_answer("x" * 1000, "short")[0].startswith("runaway")
    assert check_answer("Plan A: go home.", "Go home, plan A.")[0] is None


def test_endpoint_from_the_documented_variable(monkeypatch):
    """RMTUI_LLM_BASE_URL (the README's and the app's name) is read; it was RMTUI_LLM_ENDPOINT only."""
    for v in ("RMTUI_LLM_BASE_URL", "RMTUI_LLM_ENDPOINT", "OPENAI_BASE_URL"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(RmtuiError, match="RMTUI_LLM_BASE_URL"):
        make_rewriter("llm", model="m")
    monkeypatch.setenv("RMTUI_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert make_rewriter("llm", model="m").base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("var", ["RMTUI_LLM_BASE_URL", "RMTUI_LLM_ENDPOINT", "OPENAI_BASE_URL"])
def test_app_rewrite_and_featurize_read_the_same_endpoint_variables(monkeypatch, var):
    """Each variable alone configures the app's LLM rewrite, `rmtui rewrite` and the llm labeler
    (the app read RMTUI_LLM_BASE_URL and OPENAI_BASE_URL only, the labeler none)."""
    from analysis.features.llm_labeler import LLMLabeler
    from analysis.llm.client import ENDPOINT_ENV_VARS, endpoint_from_env
    from rmtui.services import RewriteBackend

    for v in ENDPOINT_ENV_VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("RMTUI_LLM_MODEL", "served-model")
    assert not RewriteBackend.llm_configured() and endpoint_from_env() == (None, "served-model")
    monkeypatch.setenv(var, "http://127.0.0.1:9/v1")
    assert endpoint_from_env() == ("http://127.0.0.1:9/v1", "served-model")
    assert RewriteBackend.llm_configured()
    rw = make_rewriter("llm")
    assert (rw.base_url, rw.model) == ("http://127.0.0.1:9/v1", "served-model")
    lab = LLMLabeler()
    assert (lab.endpoint, lab.model) == ("http://127.0.0.1:9/v1", "served-model")


def test_endpoint_variables_first_set_wins():
    from analysis.llm.client import endpoint_from_env

    env = {"OPENAI_BASE_URL": "http://c/v1", "RMTUI_LLM_ENDPOINT": "http://b/v1", "RMTUI_LLM_BASE_URL": ""}
    assert endpoint_from_env(env) == ("http://b/v1", None)
    assert endpoint_from_env({"OPENAI_BASE_URL": "http://c/v1"}) == ("http://c/v1", None)
