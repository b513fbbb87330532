"""The served-RM engine (vLLM's POST /classify) against a loopback server that follows vLLM's
schema and runs a real tiny RM: same rewards as in-process, raw logits asked for, token ids sent,
left truncation, its own model id, cache and resume, invariance check, errors in one line.
(No real vLLM here: it needs CUDA.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.datasets.readers import ReadOptions
from analysis.errors import ModelError
from analysis.datasets.ingest import ingest
from analysis.scoring import ScoreSettings, load_reward_model, load_study_models, rescore, score_study
from analysis.scoring.served import API_KEY_ENV, parse_served_spec
from analysis.store import open_study
from analysis.store import scores as store_scores

from ...conftest import SAMPLE
from ...fake_vllm import FakeVLLM

HARMLESS = str(SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz")
RAW = dict(format="raw", max_length=64, chunk_size=16)  # BERT pair format needs token types: refused


@pytest.fixture(scope="module")
def server(tiny_rm_dir):
    with FakeVLLM(tiny_rm_dir) as s:
        yield s


def _study(path, n_pairs=12):
    st = open_study(path)
    ingest(st, HARMLESS, ReadOptions(limit=n_pairs))
    return st


def _spec(server):
    return f"{server.url}#{server.served_name}"


def test_served_rewards_equal_in_process(server, tiny_rm_dir, tmp_path):
    st = _study(tmp_path / "s.duckdb")
    n = store_scores.n_texts(st)
    server.requests.clear()
    res = score_study(st, _spec(server), "pre", settings=ScoreSettings(**RAW),
                      engine_options={"tokenizer": str(tiny_rm_dir)}, check_invariance_n=8)
    assert res.n_scored == n and res.invariance_max_abs_diff < 1e-5
    local = load_reward_model(str(tiny_rm_dir), ScoreSettings(device="cpu", **RAW))
    assert res.model_id != local.model_id  # the engine is part of the model run
    ref = local.score_frame(store_scores.pending_texts(st, "none")).sort_values("text_id").reset_index(drop=True)
    got = st.df("SELECT text_id, reward, truncated, n_tokens FROM scores ORDER BY text_id")
    assert got["text_id"].tolist() == ref["text_id"].tolist()
    assert np.max(np.abs(got["reward"].to_numpy() - ref["reward"].to_numpy())) < 1e-5
    assert got["truncated"].tolist() == ref["truncated"].tolist() and got["truncated"].any()
    assert got["n_tokens"].tolist() == ref["n_tokens"].tolist() and got["n_tokens"].max() == 64
    body = server.requests[-1]
    assert body["use_activation"] is False and body["truncate_prompt_tokens"] == 64
    assert body["model"] == "tiny-rm" and all(isinstance(x, list) and isinstance(x[0], int) for x in body["input"])
    row = st.df("SELECT * FROM models").iloc[0]
    assert row["path_or_hub_id"] == _spec(server) and row["device"] == "vllm-server" and row["dtype"] == "server"
    assert json.loads(row["settings"])["engine"] == "vllm-server"
    st.close()


def test_served_cache_resume_and_rescore(server, tiny_rm_dir, tmp_path):
    st = _study(tmp_path / "s.duckdb")
    n = store_scores.n_texts(st)
    opts = {"tokenizer": str(tiny_rm_dir)}
    first = score_study(st, _spec(server), "post", settings=ScoreSettings(**RAW), engine_options=opts, limit=5)
    assert first.n_scored == 5
    second = score_study(st, _spec(server), "post", settings=ScoreSettings(**RAW), engine_options=opts)
    assert second.n_skipped == 5 and second.n_scored == n - 5
    assert st.scalar("SELECT count(DISTINCT text_id) FROM scores") == n == st.scalar("SELECT count(*) FROM scores")
    # the study's models reload as the same served model run; new texts are scored through it
    models = load_study_models(st)
    assert [m.model_id for m in models] == [second.model_id]
    texts = store_scores.random_study_texts(st, 2).assign(response=lambda d: d["response"] + " Thanks!")
    from analysis.hashing import text_id

    texts["text_id"] = [text_id(c, r) for c, r in zip(texts["context"], texts["response"])]
    out = rescore(st, texts, models)
    assert len(out) == 2 and out["reward"].notna().all()
    assert st.scalar("SELECT count(*) FROM scores") == n + 2
    for m in models:
        m.close()
    st.close()


def test_served_errors_are_one_line(server, tiny_rm_dir, tmp_path, monkeypatch):
    opts = {"tokenizer": str(tiny_rm_dir)}
    st = _study(tmp_path / "s.duckdb", 3)
    with pytest.raises(ModelError, match="token_type_ids"):  # BERT pair format: the server gets ids only
        score_study(st, _spec(server), "pre", settings=ScoreSettings(format="pair"), engine_options=opts)
    with pytest.raises(ModelError, match="no model 'other'; it serves tiny-rm"):
        score_study(st, f"{server.url}#other", "pre", settings=ScoreSettings(**RAW), engine_options=opts)
    with pytest.raises(ModelError, match="Connect"):
        score_study(st, "http://127.0.0.1:9/v1#tiny-rm", "pre", settings=ScoreSettings(**RAW), engine_options=opts)
    server.fail_next.append((400, "This model's maximum context length is 8 tokens."))
    with pytest.raises(ModelError, match="HTTP 400: This model's maximum context length is 8 tokens"):
        score_study(st, _spec(server), "pre", settings=ScoreSettings(**RAW), engine_options=opts)
    with pytest.raises(ModelError, match="no credentials in the URL"):
        parse_served_spec("http://user:secret@127.0.0.1:1/v1#m")
    assert parse_served_spec("http://h:1#m") == ("http://h:1/v1", "m")
    # an API key goes as a bearer token and nowhere into the study
    monkeypatch.setenv(API_KEY_ENV, "sk-test-123")
    server.requests.clear()
    score_study(st, _spec(server), "pre", settings=ScoreSettings(**RAW), engine_options=opts)
    assert server.requests[-1]["authorization"] == "Bearer sk-test-123"
    dump = st.df("SELECT * FROM models").to_json(date_format="iso") + st.df("SELECT * FROM score_runs").to_json(date_format="iso")
    assert "sk-test-123" not in dump
    st.close()


def test_cli_served_model(server, tiny_rm_dir, tmp_path):
    from rmtui.cli import app

    path = tmp_path / "s.duckdb"
    _study(path, 4).close()
    r = CliRunner().invoke(app, ["score", "--study", str(path), "--model", _spec(server), "--role", "pre",
                                 "--tokenizer", str(tiny_rm_dir), "--format", "raw", "--max-length", "64"])
    assert r.exit_code == 0, r.output
    assert f"served by {server.url}" in r.output and "scored " in r.output
    r = CliRunner().invoke(app, ["score", "--study", str(path), "--model", str(tiny_rm_dir), "--role", "pre",
                                 "--gpus", "2"])
    assert r.exit_code != 0 and "--gpus is an option of the Ray engine, not of --engine local" in str(r.exception)


# -- faults on a schedule (issue 25): retries, failed runs never `done`, resume -------------------------

FAST_RETRY = {"retry_base": 0.01, "retry_cap": 0.05}


def _runs(st):
    return st.df("SELECT status, reason, n_scored, settings FROM score_runs ORDER BY started_at")


def test_served_run_with_30_percent_failed_calls_completes(tiny_rm_dir, tmp_path):
    """A loopback server answering 30 % of /classify calls with 500 or 429 (Retry-After: 0): the run
    retries with back-off, scores every text and is `done`; the retries are recorded with the run."""
    st = _study(tmp_path / "s.duckdb", 30)
    n = store_scores.n_texts(st)
    with FakeVLLM(tiny_rm_dir) as srv:
        srv.fail_rate = 0.3
        res = score_study(st, _spec(srv), "pre", settings=ScoreSettings(**{**RAW, "chunk_size": 6}),
                          engine_options={"tokenizer": str(tiny_rm_dir), "batch_texts": 1, "parallel_requests": 2,
                                          **FAST_RETRY})
        assert srv.n_faults >= 8 and srv.n_answered == n, (srv.n_faults, srv.n_answered)  # really failed calls
    assert res.n_scored == n
    assert st.scalar("SELECT count(*) FROM scores WHERE reward IS NOT NULL AND isfinite(reward)") == n
    runs = _runs(st)
    assert runs["status"].tolist() == ["done"] and runs["reason"].isna().all()
    assert json.loads(runs["settings"][0])["n_retries"] == srv.n_faults
    st.close()


def test_served_server_dies_run_not_done_and_a_rerun_finishes(tiny_rm_dir, tmp_path):
    """The server dies mid-run: the run is `failed` with the reason (never `done`), the chunks committed
    before are kept, summary lists the run as incomplete; once the server is back, a rerun finishes."""
    from analysis.fit.study_fit import summary

    st = _study(tmp_path / "s.duckdb", 12)
    n = store_scores.n_texts(st)
    opts = {"tokenizer": str(tiny_rm_dir), "batch_texts": 2, "parallel_requests": 1, "max_tries": 3,
            "retry_seconds": 2.0, **FAST_RETRY}
    settings = ScoreSettings(**{**RAW, "chunk_size": 4})
    with FakeVLLM(tiny_rm_dir) as srv:
        srv.die_after = 4  # two chunks of 4 texts answered, then gone
        with pytest.raises(ModelError, match=r"served RM at .*(Connect|Read|RemoteProtocol|attempts)"):
            score_study(st, _spec(srv), "pre", settings=settings, engine_options=opts)
        runs = _runs(st)
        assert runs["status"].tolist() == ["failed"], runs
        assert "served RM" in runs["reason"][0] and runs["n_scored"][0] == 8
        assert st.scalar("SELECT count(*) FROM scores") == 8
        incomplete = summary(st)["incomplete_runs"]
        assert len(incomplete) == 1 and f"{n - 8:,} texts have no score" in incomplete[0], incomplete
        srv.restart()
        res = score_study(st, _spec(srv), "pre", settings=settings, engine_options=opts)
    assert res.n_skipped == 8 and res.n_scored == n - 8
    assert _runs(st)["status"].tolist() == ["failed", "done"]
    assert st.scalar("SELECT count(*) FROM scores") == n
    assert summary(st)["incomplete_runs"] == []
    st.close()


def test_served_nan_rewards_and_missing_results_fail_the_run(tiny_rm_dir, tmp_path):
    """NaN rewards: the run is `failed`, the message names the model, the count and a first text;
    fewer results than inputs: `failed` too; neither stores anything of the bad chunk."""
    st = _study(tmp_path / "s.duckdb", 4)
    opts = {"tokenizer": str(tiny_rm_dir), "batch_texts": 4, "parallel_requests": 1, **FAST_RETRY}
    with FakeVLLM(tiny_rm_dir) as srv:
        srv.nan_next = 1
        with pytest.raises(ModelError, match=r"model tiny-rm \(vllm-server\): 4 of 4 texts got a non-finite reward "
                                             r"\(NaN or infinite\), first text [0-9a-f]+: '"):
            score_study(st, _spec(srv), "pre", settings=ScoreSettings(**RAW), engine_options=opts)
        srv.short_next = 1
        with pytest.raises(ModelError, match="expected 4 results in 'data', got 3"):
            score_study(st, _spec(srv), "pre", settings=ScoreSettings(**RAW), engine_options=opts)
    runs = _runs(st)
    assert runs["status"].tolist() == ["failed", "failed"], runs
    assert "non-finite reward" in runs["reason"][0] and "got 3" in runs["reason"][1]
    assert st.scalar("SELECT count(*) FROM scores") == 0
    st.close()


def test_served_dropped_connections_and_retry_after(tiny_rm_dir, tmp_path):
    """Dropped connections are retried; Retry-After (seconds or an HTTP date) is what the back-off waits."""
    from analysis.scoring.served import _retry_after

    assert _retry_after("3") == 3.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: at once
    st = _study(tmp_path / "s.duckdb", 4)
    with FakeVLLM(tiny_rm_dir) as srv:
        srv.drop_next = 2
        res = score_study(st, _spec(srv), "pre", settings=ScoreSettings(**RAW),
                          engine_options={"tokenizer": str(tiny_rm_dir), **FAST_RETRY})
    assert res.n_scored == store_scores.n_texts(st) and _runs(st)["status"].tolist() == ["done"]
    st.close()


async def test_app_says_which_scoring_run_is_incomplete(tiny_rm_dir, tmp_path):
    """A run that failed (the server died) is named in the report and in the app's status line when the
    study opens."""
    from rmtui.app import RmtuiApp
    from rmtui.widgets.line import Line
    from tests.helpers.app import wait_idle

    path = tmp_path / "s.duckdb"
    st = _study(path, 6)
    with FakeVLLM(tiny_rm_dir) as srv:
        srv.die_after = 1
        with pytest.raises(ModelError):
            score_study(st, _spec(srv), "pre", settings=ScoreSettings(**{**RAW, "chunk_size": 4}),
                        engine_options={"tokenizer": str(tiny_rm_dir), "batch_texts": 4, "parallel_requests": 1,
                                        "max_tries": 2, "retry_seconds": 1.0, **FAST_RETRY})
    run_id = st.scalar("SELECT run_id FROM score_runs")
    from analysis.report.document import write_report

    md = write_report(st, tmp_path / "rep").markdown.read_text(encoding="utf-8")  # the report says so too
    assert "## Incomplete runs" in md and f"scoring run {run_id} of tiny-rm" in md and "failed after 4 texts" in md
    st.close()
    app = RmtuiApp(str(path), keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(400, 30)) as pilot:
        await wait_idle(pilot)
        status = app.screen.query_one("#status", Line).text
    assert f"incomplete: scoring run {run_id} of tiny-rm" in status and "failed after 4 texts" in status, status
