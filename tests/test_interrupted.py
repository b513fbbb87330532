"""Rows a killed job leaves behind (issue 19, item 7): ingests.status = 'running' and
score_runs.finished_at = NULL forever; now marked 'interrupted' when the study is next opened for
writing, listed by `rmtui summary`, and a job still running (another process) keeps its row."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from analysis.store import open_study
from tests.helpers.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _job(study: Path, body: str, *, wait: bool = True) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from analysis.store import open_study
        from analysis.store import pairs, scores
        st = open_study({str(study)!r})
    """) + textwrap.dedent(body)
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if wait:
        p.wait(timeout=60)
    return p


def _study(tmp_path: Path) -> Path:
    src = tmp_path / "a-train.jsonl"
    src.write_text("".join(json.dumps({"chosen": f"\n\nHuman: q{i}\n\nAssistant: y", "rejected":
                                       f"\n\nHuman: q{i}\n\nAssistant: n"}) + "\n" for i in range(3)))
    study = tmp_path / "s.duckdb"
    assert run_cli("ingest", src, "--study", study).code == 0
    return study


def test_killed_jobs_are_marked_interrupted_and_shown(tmp_path):
    study = _study(tmp_path)
    # a real process starts an ingest and a scoring run, then dies by SIGKILL before finishing them
    p = _job(study, """
        pairs.start_ingest(st, "big-train.jsonl", {})
        scores.start_run(st, "run-killed", "model-x", "cpu", {})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert p.returncode == -signal.SIGKILL
    # summary (read-only) already says so
    r = run_cli("summary", "--study", study)
    assert r.code == 0, r.all
    assert "interrupted: ingest 2 of big-train.jsonl" in r.out, r.out
    assert "interrupted: scoring run run-killed of model-x" in r.out, r.out
    with open_study(study, read_only=True) as st:
        assert st.scalar("SELECT status FROM ingests WHERE ingest_id = 2") == "running"  # not written yet
    with open_study(study) as st:  # opened for writing: marked
        assert st.df("SELECT status FROM ingests ORDER BY ingest_id")["status"].tolist() == ["done", "interrupted"]
        assert st.scalar("SELECT status FROM score_runs WHERE run_id = 'run-killed'") == "interrupted"
        assert st.scalar("SELECT finished_at FROM score_runs WHERE run_id = 'run-killed'") is None
        assert st.scalar("SELECT count(*) FROM study WHERE key LIKE 'job.%'") == 0
    r = run_cli("summary", "--study", study)
    assert r.out.count("interrupted:") == 2, r.out


def test_a_job_still_running_keeps_its_row(tmp_path):
    study = _study(tmp_path)
    p = _job(study, """
        pairs.start_ingest(st, "live-train.jsonl", {})
        st.close()  # another process shares the study: it holds no connection between chunks
        print("ready", flush=True)
        time.sleep(60)
    """, wait=False)
    try:
        assert p.stdout.readline().strip() == "ready"
        with open_study(study) as st:
            assert st.scalar("SELECT status FROM ingests WHERE ingest_id = 2") == "running"
        assert "interrupted" not in run_cli("summary", "--study", study).out
    finally:
        p.kill()
        p.wait()
    with open_study(study) as st:  # now it is gone
        assert st.scalar("SELECT status FROM ingests WHERE ingest_id = 2") == "interrupted"
