"""Secrets (issue 19, item 6) and an unreachable LLM endpoint (item 5): real loopback HTTP servers."""

from __future__ import annotations

import json
import socket
import time

import pytest

from analysis.errors import EndpointError, RmtuiError
from analysis.datasets.ingest import ingest
from analysis.store import open_study
from tests.fake_openai import FakeOpenAI
from tests.helpers.cli import run_cli

SECRET = "sk-proj-S3CRETs3cretS3CRET0123456789"


def _study(tmp_path, n=2):
    p = tmp_path / "p-test.jsonl"
    p.write_text("".join(json.dumps({"chosen": f"\n\nHuman: q{i}\n\nAssistant: yes {i}",
                                     "rejected": f"\n\nHuman: q{i}\n\nAssistant: no {i}"}) + "\n" for i in range(n)))
    path = tmp_path / "study.duckdb"
    with open_study(path) as st:
        ingest(st, str(p))
    return path


def _nowhere(path, needle: str) -> None:
    with open_study(path, read_only=True) as st:
        cols = st.df("SELECT table_name, column_name FROM information_schema.columns "
                     "WHERE table_schema = 'main' AND data_type = 'VARCHAR'")
        for t, c in cols.itertuples(index=False, name=None):
            assert st.scalar(f'SELECT count(*) FROM "{t}" WHERE "{c}" LIKE ?', [f"%{needle}%"]) == 0, (t, c)
    assert needle.encode() not in path.read_bytes()


def test_redact_url():
    from analysis.llm.client import redact_url

    assert redact_url(f"http://user:{SECRET}@127.0.0.1:8000/v1") == "http://[redacted]@127.0.0.1:8000/v1"
    assert SECRET not in redact_url(f"https://h/v1?api_key={SECRET}&x=1")
    assert "x=1" in redact_url(f"https://h/v1?api_key={SECRET}&x=1")
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_credentials_in_the_endpoint_url_are_not_stored(tmp_path):
    """http://user:sk-...@host was stored in llm_calls.endpoint (and featurizers.config)."""
    path = _study(tmp_path)
    with FakeOpenAI() as srv:
        url = srv.url.replace("http://", f"http://user:{SECRET}@")
        r = run_cli("featurize", "--study", path, "-l", "llm", "--endpoint", url, "--model", "judge", "--yes")
        assert r.code == 0, r.all
        assert SECRET not in r.all
    with open_study(path, read_only=True) as st:
        eps = set(st.df("SELECT DISTINCT endpoint FROM llm_calls")["endpoint"])
        assert eps and all("[redacted]@" in e for e in eps), eps
    _nowhere(path, SECRET)


def test_a_key_given_as_api_key_env_is_refused(tmp_path):
    path = _study(tmp_path)
    with FakeOpenAI() as srv:
        r = run_cli("featurize", "--study", path, "-l", "llm", "--endpoint", srv.url, "--model", "judge",
                    "--api-key-env", SECRET, "--yes")
        assert r.code == 1 and "looks like an API key" in r.err, r.all
        assert SECRET not in r.all and not srv.requests
    _nowhere(path, SECRET)
    with open_study(path, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM featurizers") == 0
    from analysis.llm.client import check_api_key_env

    for bad in (SECRET, "hf_abcdefghijklmnopqrstuvwxyz012345", "my-key-value"):
        with pytest.raises(EndpointError):
            check_api_key_env(bad)
    for ok in ("OPENAI_API_KEY", "RMTUI_TEST_KEY", "groq_key"):
        check_api_key_env(ok)
    from analysis.pipeline.config import parse_config

    src = tmp_path / "p-test.jsonl"
    with pytest.raises(RmtuiError, match="api_key_env"):
        parse_config({"study": "s.duckdb", "data": [{"source": str(src)}],
                      "featurizers": [{"spec": "llm:judge", "endpoint": "http://127.0.0.1:1/v1",
                                       "api_key_env": SECRET}]}, base_dir=tmp_path)


def test_missing_key_variable_warns_for_a_remote_endpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("RMTUI_NOPE_KEY", raising=False)
    path = _study(tmp_path)
    # a remote name that cannot resolve: the warning, then the probe stops the run at once
    r = run_cli("featurize", "--study", path, "-l", "llm", "--endpoint", "http://rmtui-no-such-host.invalid/v1",
                "--model", "judge", "--api-key-env", "RMTUI_NOPE_KEY", "--yes", "--timeout", "2")
    assert "RMTUI_NOPE_KEY is not set" in r.err, r.all
    assert r.code == 1
    from analysis.llm.client import key_warning

    assert key_warning("https://api.example.com/v1", "RMTUI_NOPE_KEY") is not None
    assert key_warning("http://127.0.0.1:8000/v1", "RMTUI_NOPE_KEY") is None  # a local server needs none
    assert key_warning("http://192.168.1.5:8000/v1", "RMTUI_NOPE_KEY") is None
    monkeypatch.setenv("RMTUI_NOPE_KEY", "x")
    assert key_warning("https://api.example.com/v1", "RMTUI_NOPE_KEY") is None


def test_unreachable_endpoint_stops_at_once_naming_it(tmp_path):
    """Nothing listening on a loopback port: every text failed after 5 attempts (19 s for 4 texts)."""
    path = _study(tmp_path, n=20)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    r = run_cli("featurize", "--study", path, "-l", "llm", "--endpoint", f"http://127.0.0.1:{port}/v1",
                "--model", "judge", "--yes")
    dt = time.perf_counter() - t0
    assert r.code == 1, r.all
    assert f"http://127.0.0.1:{port}/v1" in r.err and "cannot connect" in r.err, r.all
    assert dt < 5, dt
    with open_study(path, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM llm_calls") == 0
        assert st.scalar("SELECT count(*) FROM label_failures") == 0


def test_symlink_loop_is_reported_as_such(tmp_path):
    a = tmp_path / "a.jsonl"
    a.symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").symlink_to(a)
    r = run_cli("ingest", a, "--study", tmp_path / "s.duckdb")
    assert r.code == 1 and "symbolic link loop" in r.err, r.all
    d = tmp_path / "dangling.jsonl"
    d.symlink_to(tmp_path / "gone.jsonl")
    r = run_cli("ingest", d, "--study", tmp_path / "s.duckdb")
    assert r.code == 1 and "does not exist" in r.err and "gone.jsonl" in r.err, r.all
