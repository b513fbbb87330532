"""The LLM labeler and ChatClient against a real loopback HTTP server with scripted failures."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import InputError
from analysis.features import featurize_study
from analysis.features.check import check_labeler, cohens_kappa, labeler_agreement
from analysis.features.llm_labeler import LabelConfig
from analysis.datasets.ingest import ingest
from analysis.llm.client import ChatClient, ChatError, parse_json_object
from analysis.store import open_study
from analysis.store.features import feature_defs, label_failures

from tests.fake_openai import FakeOpenAI

KEY = "sk-FAKE-rmtui-test-key-5f1e2d3c4b5a"
ENV = "RMTUI_TEST_KEY"
FAST = dict(backoff_base=0.01, timeout=0.6, max_retries=3, concurrency=4)


@pytest.fixture
def server():
    with FakeOpenAI(retry_after="1", slow_s=1.2) as s:
        yield s


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)


def _write_pairs(path: Path, replies: list[tuple[str, str]]) -> Path:
    rows = [{"chosen": f"\n\nHuman: question {i}?\n\nAssistant: {c}",
             "rejected": f"\n\nHuman: question {i}?\n\nAssistant: {r}"} for i, (c, r) in enumerate(replies)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _study(tmp_path, replies):
    st = open_study(tmp_path / "study.duckdb")
    ingest(st, str(_write_pairs(tmp_path / "p-test.jsonl", replies)))
    return st


def _assert_key_nowhere(st):
    """No VARCHAR cell of any table holds the key (the byte check alone could miss compressed strings)."""
    cols = st.df("SELECT table_name, column_name FROM information_schema.columns "
                 "WHERE table_schema = 'main' AND data_type = 'VARCHAR'")
    for t, c in cols.itertuples(index=False, name=None):
        assert st.scalar(f'SELECT count(*) FROM "{t}" WHERE "{c}" LIKE ?', [f"%{KEY}%"]) == 0, (t, c)
    assert st.scalar("SELECT count(*) FROM llm_calls") > 0


def _msgs(text="hello"):
    return [{"role": "user", "content": f"The assistant's last reply:\n<<<\n{text}\n>>>"}]


# -- ChatClient ---------------------------------------------------------------------------------

def test_chat_good_answer_logs_call_without_key(server, tmp_path):
    st = open_study(tmp_path / "s.duckdb")
    c = ChatClient(server.url, "m", api_key_env=ENV, study=st, purpose="test", **FAST)
    r = c.chat(_msgs("hi"), json_mode=True, text_id="t1")
    assert r.request_id.startswith("chatcmpl-") and r.attempts == 1 and r.prompt_tokens > 0
    assert server.requests[0]["auth"] == f"Bearer {KEY}"
    calls = st.df("SELECT * FROM llm_calls")
    assert list(calls["status"]) == ["ok"] and calls["text_id"][0] == "t1" and calls["model"][0] == "m"
    assert calls["latency_s"][0] > 0 and calls["request_id"][0] == r.request_id
    assert KEY not in json.dumps(c.describe())
    st.close()
    assert KEY.encode() not in (tmp_path / "s.duckdb").read_bytes()


@pytest.mark.parametrize("script,statuses", [
    ("500,good", ["http_500", "ok"]),
    ("malformed,good", ["invalid_json", "ok"]),
    ("missing,good", ["missing_keys", "ok"]),
    ("badvalue,good", ["bad_value", "ok"]),
    ("slow,good", ["timeout", "ok"]),
])
def test_chat_retries_transient_failures(server, tmp_path, script, statuses):
    st = open_study(tmp_path / "s.duckdb")
    cfg = LabelConfig.load()
    c = ChatClient(server.url, "m", api_key_env=ENV, study=st, **FAST)
    text = f"reply [[{script}]]"
    r = c.chat(cfg.messages("ctx", text), validate=cfg.parse, text_id="t")
    assert r.attempts == 2 and set(r.parsed) == {d.name for d in cfg.feature_defs()}
    assert list(st.df("SELECT status FROM llm_calls ORDER BY attempt")["status"]) == statuses


def test_chat_429_honours_retry_after(server, tmp_path):
    c = ChatClient(server.url, "m", api_key_env=ENV, **FAST)
    r = c.chat(_msgs("x [[429,good]]"))
    assert r.attempts == 2
    t = [q["t"] for q in server.requests]
    assert t[1] - t[0] >= 0.95        # Retry-After: 1, although the back-off base is 0.01 s


def test_chat_gives_up_with_reason_and_400_is_not_retried(server):
    c = ChatClient(server.url, "m", api_key_env=ENV, **FAST)
    with pytest.raises(ChatError) as e:
        c.chat(_msgs("x [[500]]"))
    assert e.value.attempts == 4 and "HTTP 500" in e.value.reason
    with pytest.raises(ChatError) as e:
        c.chat(_msgs("y [[400]]"))
    assert e.value.attempts == 1 and e.value.status == "http_400"


def test_map_bounds_concurrency(server):
    c = ChatClient(server.url, "m", api_key_env=ENV, **dict(FAST, concurrency=2))
    active, peak, lock = [0], [0], threading.Lock()

    def fn(job):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return job.key

    from analysis.llm.client import Job

    out = sorted(r for _, r in c.map([Job(key=i) for i in range(8)], fn))
    assert out == list(range(8)) and peak[0] == 2


def test_endpoint_urls():
    from analysis.llm.client import normalise_base_url

    assert normalise_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert normalise_base_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert normalise_base_url("https://x.ai/openai/v1beta") == "https://x.ai/openai/v1beta/chat/completions"
    assert normalise_base_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    from analysis.errors import EndpointError

    with pytest.raises(EndpointError):
        normalise_base_url("localhost:8000")


def test_parse_json_object_fences_and_prose():
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Here: {"a": true} done') == {"a": True}
    with pytest.raises(ValueError):
        parse_json_object("no json here")


# -- label config ---------------------------------------------------------------------------------

def test_default_config_has_the_papers_19_keys():
    cfg = LabelConfig.load()
    names = [s.name for s in cfg.features]
    assert len(names) == 19
    for k in ("helpful", "harmless", "honest", "refusal", "coherent", "eloquent", "creative", "anthropomorphic",
              "sentiment", "insult", "sexually_explicit", "privacy", "discriminatory", "manipulative",
              "human_vocabulary_quality", "topics", "discrimination_targets"):
        assert k in names
    roles = {s.name: s.role for s in cfg.features}
    assert roles["helpful"] == roles["harmless"] == "target" and roles["eloquent"] == "spoiler"
    ans = cfg.parse(json.dumps({**{s.name: False for s in cfg.features}, "sentiment": "positive",
                                "topics": ["Health and fitness"], "discrimination_targets": []}))
    assert ans["sentiment"] == 1 and ans["topics:health_and_fitness"] == 1 and ans["topics:culture_and_the_arts"] == 0


def test_custom_config_and_errors(tmp_path):
    p = tmp_path / "labels.toml"
    p.write_text('[[feature]]\nname = "polite"\ntype = "binary"\nrole = "target"\ndescription = "polite?"\n'
                 '[[feature]]\nname = "tone"\ntype = "ordinal"\nvalues = [0, 1, 2]\n')
    cfg = LabelConfig.load(p)
    assert [d.name for d in cfg.feature_defs()] == ["polite", "tone"]
    with pytest.raises(ValueError):
        cfg.parse('{"polite": true, "tone": 5}')
    bad = tmp_path / "bad.toml"
    bad.write_text('[[feature]]\nname = "x"\ntype = "scale"\n')
    with pytest.raises(InputError, match=r"bad.toml: feature 'x': field 'type'"):
        LabelConfig.load(bad)


# -- the labeler on a study -------------------------------------------------------------------------

SMALL = "[[feature]]\nname = \"helpful\"\ntype = \"binary\"\nrole = \"target\"\n" \
        "[[feature]]\nname = \"harmless\"\ntype = \"binary\"\nrole = \"target\"\n" \
        "[[feature]]\nname = \"sentiment\"\ntype = \"ordinal\"\nvalues = [-1, 0, 1]\n"


def test_label_study_with_failures_every_text_accounted_for(server, tmp_path, capsys):
    replies = [
        ("plain good answer", "another fine answer"),
        ("rate limited once [[429,good]]", "server error twice [[500,500,good]]"),
        ("malformed forever [[malformed]]", "missing keys once [[missing,good]]"),
        ("slow then fine [[slow,good]]", "always 500 [[500]]"),
        ("bad request [[400]]", "bad value then ok [[badvalue,good]]"),
    ]
    st = _study(tmp_path, replies)
    (tmp_path / "small.toml").write_text(SMALL)
    res = featurize_study(st, "llm", endpoint=server.url, model="judge", api_key_env=ENV,
                          config=str(tmp_path / "small.toml"), **FAST)
    n_texts = st.scalar("SELECT count(DISTINCT text_id) FROM texts")
    assert res.n_texts == n_texts == 10
    fails = label_failures(st, "llm:judge")
    labelled = st.df("SELECT text_id, count(*) AS n FROM features WHERE featurizer='llm:judge' GROUP BY 1")
    assert set(labelled["n"]) == {3}                       # every labelled text has all 3 keys once
    assert len(labelled) + len(fails) == n_texts            # every text labelled or listed as failed
    assert not set(labelled["text_id"]) & set(fails["text_id"])
    reasons = dict(st.df("SELECT t.response, f.reason FROM label_failures f JOIN texts t USING (text_id)")
                   .itertuples(index=False, name=None))
    assert set(reasons) == {"malformed forever [[malformed]]", "always 500 [[500]]", "bad request [[400]]"}
    assert "invalid_json" in reasons["malformed forever [[malformed]]"]
    assert "HTTP 500" in reasons["always 500 [[500]]"] and "HTTP 400" in reasons["bad request [[400]]"]
    assert dict(zip(fails["reason"].str[:8], fails["attempts"]))["HTTP 400"] == 1
    # nothing labelled twice: at most one good answer was requested per text
    good_per_reply = {}
    for q in server.requests:
        if q["behaviour"] == "good":
            good_per_reply[q["reply"]] = good_per_reply.get(q["reply"], 0) + 1
    assert max(good_per_reply.values()) == 1
    calls = st.df("SELECT status, count(*) AS n FROM llm_calls GROUP BY 1")
    assert int(calls["n"].sum()) == len(server.requests)
    defs = feature_defs(st, "llm:judge")
    assert set(defs["name"]) == {"helpful", "harmless", "sentiment"} and not defs["proxy"].any()
    cfg = st.scalar("SELECT config FROM featurizers WHERE featurizer='llm:judge'")
    assert ENV in cfg and KEY not in cfg
    # a rerun asks only for the failed texts again
    before = len(server.requests)
    featurize_study(st, "llm", endpoint=server.url, model="judge", api_key_env=ENV,
                    config=str(tmp_path / "small.toml"), **FAST)
    again = {q["reply"] for q in server.requests[before:]}
    assert again == set(reasons)
    _assert_key_nowhere(st)
    st.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("study.duckdb*"))
    assert KEY.encode() not in blob
    out = capsys.readouterr()
    assert KEY not in out.out + out.err


def test_resume_after_interruption_asks_nothing_twice(server, tmp_path):
    replies = [(f"chosen reply number {i}", f"rejected reply number {i}") for i in range(12)]
    st = _study(tmp_path, replies)
    (tmp_path / "small.toml").write_text(SMALL)
    cancel = threading.Event()
    seen = [0]

    def progress(n):
        seen[0] += n
        if seen[0] >= 8:
            cancel.set()

    opts = dict(endpoint=server.url, model="judge", api_key_env=ENV, config=str(tmp_path / "small.toml"),
                **dict(FAST, concurrency=2))
    r1 = featurize_study(st, "llm", progress=progress, cancel=cancel, **opts)
    assert r1.cancelled and 8 <= r1.n_done < 24
    first = set(server.replies_asked())
    done_ids = set(st.df("SELECT DISTINCT text_id FROM features")["text_id"])
    assert len(done_ids) == r1.n_done
    n_before = len(server.requests)
    r2 = featurize_study(st, "llm", **opts)
    second = server.replies_asked()[n_before:]
    assert r2.n_cached == r1.n_done and r2.n_done == 24 - r1.n_done
    assert not set(second) & first                           # no request for a text asked before
    assert len(second) == len(set(second)) == 24 - r1.n_done
    r3 = featurize_study(st, "llm", **opts)
    assert r3.n_done == 0 and len(server.requests) == n_before + len(second)


def test_confirmation_refused_sends_nothing(server, tmp_path):
    st = _study(tmp_path, [("a", "b")])
    asked = []
    res = featurize_study(st, "llm", endpoint=server.url, model="judge", api_key_env=ENV,
                          price_per_1k_prompt=1000.0, confirm_above_usd=0.01,
                          confirm=lambda est: asked.append(est) or False, **FAST)
    assert res.cancelled and asked and asked[0]["cost_usd"] > 0.01 and asked[0]["texts"] == 2
    assert server.requests == []


def test_changed_label_config_is_not_mixed_in(server, tmp_path):
    from analysis.errors import RmtuiError

    st = _study(tmp_path, [("a", "b")])
    (tmp_path / "small.toml").write_text(SMALL)
    (tmp_path / "other.toml").write_text(SMALL.replace('name = "harmless"', 'name = "polite"'))
    opts = dict(endpoint=server.url, model="judge", api_key_env=ENV, **FAST)
    featurize_study(st, "llm", config=str(tmp_path / "small.toml"), **opts)
    with pytest.raises(RmtuiError, match="--replace"):
        featurize_study(st, "llm", config=str(tmp_path / "other.toml"), **opts)
    assert st.scalar("SELECT count(*) FROM features WHERE name = 'harmless'") == 2   # untouched
    res = featurize_study(st, "llm", config=str(tmp_path / "other.toml"), replace=True, **opts)
    assert res.n_done == 2
    assert set(st.df("SELECT DISTINCT name FROM features")["name"]) == {"helpful", "polite", "sentiment"}


def test_cohens_kappa_hand_computed():
    a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    # p_o = 7/10; p_e = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.2/0.5 = 0.4
    assert cohens_kappa(a, b) == pytest.approx(0.4)
    assert cohens_kappa([0, 1, -1, 0], [0, 1, -1, 0]) == pytest.approx(1.0)
    assert np.isnan(cohens_kappa([1, 1], [1, 1]))
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    table = np.array([[3, 1], [2, 4]])  # rows a=0/1, cols b=0/1 of the lists above
    assert sm_kappa(table).kappa == pytest.approx(0.4)


def test_check_labeler_reports_kappa(server, tmp_path):
    replies = [(f"chosen {i} text", f"rejected {i} text") for i in range(15)]
    st = _study(tmp_path, replies)
    (tmp_path / "small.toml").write_text(SMALL)
    featurize_study(st, "llm", endpoint=server.url, model="judge-a", api_key_env=ENV,
                    config=str(tmp_path / "small.toml"), **FAST)
    res, agree = check_labeler(st, "llm:judge-a", endpoint=server.url, model="judge-b", n_pairs=10, seed=3,
                               api_key_env=ENV, **FAST)
    assert res.n_done == 20
    a = agree.set_index("name")
    assert a.loc["harmless", "kappa"] == pytest.approx(1.0) and a.loc["harmless", "n"] == 20
    assert a.loc["helpful", "kappa"] < 1.0
    # the same numbers from the generic function
    full = labeler_agreement(st, "llm:judge-a", "llm:judge-b").set_index("name")
    assert full.loc["helpful", "kappa"] == pytest.approx(a.loc["helpful", "kappa"])


# -- the command, killed in the middle and rerun ---------------------------------------------------

def test_cli_killed_then_resumed_with_check(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    replies = [(f"chosen cli reply {i}", f"rejected cli reply {i}") for i in range(10)]
    st = _study(tmp_path, replies)
    st.close()
    (tmp_path / "small.toml").write_text(SMALL)
    env = dict(os.environ, **{ENV: KEY, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"})
    with FakeOpenAI(delay_s=0.08) as server:
        cmd = [sys.executable, "-m", "rmtui", "featurize", "--study", str(tmp_path / "study.duckdb"),
               "--labeler", "llm", "--endpoint", server.url, "--model", "judge", "--api-key-env", ENV,
               "--config", str(tmp_path / "small.toml"), "--concurrency", "1", "--yes"]
        p = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(server.requests) < 6 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.02)
        p.kill()
        out1, err1 = p.communicate()
        first = set(server.replies_asked())
        assert 6 <= len(first) < 20
        st = open_study(tmp_path / "study.duckdb")
        labelled = set(st.df("SELECT t.response FROM features f JOIN texts t USING (text_id) "
                             "WHERE f.featurizer = 'llm:judge'")["response"])
        st.close()
        assert len(labelled) >= 4 and labelled <= first
        n1 = len(server.requests)
        r = subprocess.run(cmd + ["--check-with", "judge-b", "--check-n", "4"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        second = [q["reply"] for q in server.requests[n1:] if q["model"] == "judge"]
        assert not set(second) & labelled                 # nothing already labelled is asked again
        assert set(second) | labelled == {c for pair in replies for c in pair}
        assert len(second) == len(set(second))
        checked = [q for q in server.requests[n1:] if q["model"] == "judge-b"]
        assert len(checked) == 8
    st = open_study(tmp_path / "study.duckdb")
    _assert_key_nowhere(st)
    st.close()
    assert "Cohen's kappa" in r.stdout and "helpful" in r.stdout and "mean in chosen vs rejected" in r.stdout
    for text in (out1.decode(), err1.decode(), r.stdout, r.stderr):
        assert KEY not in text
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("study.duckdb*"))
    assert KEY.encode() not in blob


def test_cli_exits_nonzero_when_every_text_failed(tmp_path):
    """A dead endpoint: exit 1 (it exited 0), and since issue 19 at once, from one probe before any text
    is asked (it took 5 attempts a text); nothing labelled, nothing sent; the study's pairs are untouched."""
    import socket

    from typer.testing import CliRunner

    from rmtui.cli import app

    st = _study(tmp_path, [("fine", "fine")])
    path = st.path
    st.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import time

    from analysis.errors import EndpointError

    t0 = time.perf_counter()
    r = CliRunner().invoke(app, ["featurize", "--study", str(path), "--labeler", "llm", "--endpoint",
                                 f"http://127.0.0.1:{port}/v1", "--model", "judge", "--yes"])
    assert r.exit_code == 1, r.output
    # one probe before labelling (issue 19): it stops at once naming the endpoint; it took 5 attempts a text
    assert isinstance(r.exception, EndpointError) and f"127.0.0.1:{port}" in str(r.exception), r.exception
    assert time.perf_counter() - t0 < 10
    with open_study(path, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM llm_calls") == 0  # nothing was sent
        assert st.scalar("SELECT count(*) FROM features WHERE featurizer = 'llm:judge'") == 0
