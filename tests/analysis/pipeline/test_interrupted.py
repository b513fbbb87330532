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

import pytest

from analysis.store import open_study
from tests.helpers.cli import run_cli
from tests.helpers.kill import rmtui_killed_at

ROOT = Path(__file__).resolve().parents[3]


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
    imprint as a fit that was never interrupted. The kills land where a fit can break: all computed and
    nothing written (the latest moment of the computing part), in the middle of writing the fit, and
    between the fit's rows and its statistics."""
    from analysis.datasets.synth import make_synthetic_study

    study = tmp_path / "s.duckdb"
    make_synthetic_study(study, 3000, seed=5)
    ref = tmp_path / "ref.duckdb"
    ref.write_bytes(study.read_bytes())
    assert run_cli("fit", "--study", ref).code == 0  # the uninterrupted fit
    write = "analysis.store.metrics:write_fit"
    for target, when in ((write, "before"), (write, "during"), ("analysis.store.metrics:write_fit_stats", "before")):
        rmtui_killed_at(target, when, "fit", "--study", study, delay=0.01)
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


@pytest.mark.slow
def test_rewrite_killed_then_rerun_matches_an_uninterrupted_run(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    """SIGKILL while `rmtui rewrite --rewriter rules` runs (kill -9 matrix: only a resume test kept it):
    the study opens after each kill, and the rerun stores exactly the rewrites and rewards of an
    uninterrupted run, none twice. The kills land where a resume can go wrong: the rewrites' pre-D
    rewards stored and their post-D ones not, every reward and feature stored and no rewrite row, and
    every rewrite row stored and the command not yet done."""
    from analysis.datasets.readers import ReadOptions
    from analysis.features import featurize_study
    from analysis.datasets.ingest import ingest
    from analysis.scoring import score_study
    from tests.conftest import SAMPLE

    study = tmp_path / "s.duckdb"
    with open_study(study) as st:
        ingest(st, str(SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz"), ReadOptions(limit=24))
        score_study(st, str(tiny_rm_dir), "pre", name="tiny-pre")
        score_study(st, str(tiny_rm_dir_b), "post", name="tiny-post")
        featurize_study(st, "heuristic")
        n_scores = st.scalar("SELECT count(*) FROM scores")
    ref = tmp_path / "ref.duckdb"
    ref.write_bytes(study.read_bytes())
    cmd = ["rewrite", "--rewriter", "rules", "--n", "20", "--seed", "3", "--no-fit"]
    r = run_cli(*cmd, "--study", ref)  # the uninterrupted run
    assert r.code == 0, r.all
    with open_study(ref, read_only=True) as b:
        n_new = b.scalar("SELECT count(*) FROM scores") - n_scores
    assert n_new > 0
    rows = "analysis.store.rewrites:add_rewrites"
    for target, when, scored, n_rows in (("analysis.store.scores:add_scores", "after", n_new // 2, 0),
                                         (rows, "before", n_new, 0), (rows, "after", n_new, 40)):
        rmtui_killed_at(target, when, *cmd, "--study", study)
        with open_study(study) as st:
            assert st.scalar("SELECT count(*) FROM rewrites") == st.scalar("SELECT count(DISTINCT rewrite_id) FROM rewrites")
            # the kill landed where it was aimed
            assert st.scalar("SELECT count(*) FROM rewrites") == n_rows
            assert st.scalar("SELECT count(*) FROM scores") == n_scores + scored
    r = run_cli(*cmd, "--study", study)
    assert r.code == 0, r.all
    q_rw = "SELECT rewrite_id, pair_id, side, new_response FROM rewrites ORDER BY ALL"
    q_sc = "SELECT model_id, text_id, round(reward, 5) AS r FROM scores ORDER BY ALL"
    with open_study(study, read_only=True) as a, open_study(ref, read_only=True) as b:
        assert len(a.df(q_rw)) == 40 and a.df(q_rw).equals(b.df(q_rw))
        assert a.df(q_sc).equals(b.df(q_sc))
        assert a.scalar("SELECT count(*) FROM scores") == a.scalar("SELECT count(DISTINCT (model_id, text_id)) FROM scores")
