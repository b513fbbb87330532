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


def test_fit_killed_at_any_moment_leaves_one_whole_fit(tmp_path):
    """SIGKILL while `rmtui fit` runs (kill -9 matrix: fit had no automated test): the study opens, every
    fit it lists is whole (imprint and pair_metrics rows only for listed fits), and a rerun gives the same
    imprint as a fit that was never interrupted."""
    import os

    from analysis.synth import make_synthetic_study

    study = tmp_path / "s.duckdb"
    make_synthetic_study(study, 3000, seed=5)
    ref = tmp_path / "ref.duckdb"
    ref.write_bytes(study.read_bytes())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()  # the uninterrupted fit, timed: the kills land at 35, 65 and 90 % of it
    subprocess.run([sys.executable, "-m", "rmtui", "fit", "--study", str(ref)], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    for delay in (0.35 * took, 0.65 * took, 0.9 * took):
        p = subprocess.Popen([sys.executable, "-m", "rmtui", "fit", "--study", str(study)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        with open_study(study) as st:
            fits = set(st.df("SELECT fit_id FROM fits")["fit_id"])
            assert set(st.df("SELECT DISTINCT fit_id FROM imprint")["fit_id"]) <= fits
            assert set(st.df("SELECT DISTINCT fit_id FROM pair_metrics")["fit_id"]) <= fits
    assert run_cli("fit", "--study", study).code == 0
    q = ("SELECT target, feature, round(estimate, 9) AS e, round(se, 9) AS se FROM imprint "
         "WHERE fit_id = (SELECT fit_id FROM fits WHERE kind IS NULL OR kind <> 'robustness' "
         "ORDER BY created_at DESC LIMIT 1) ORDER BY ALL")
    with open_study(study, read_only=True) as a, open_study(ref, read_only=True) as b:
        assert a.df(q).equals(b.df(q))
        assert len(a.df(q)) > 0
