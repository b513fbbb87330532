"""Two processes scoring the same model on one study (issue 25, item 5): the second redid the whole
run and discarded it ("scored 0"); now it stops before any work and says which process holds the run.
A run of another model, or a run whose process is gone, does not stop it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analysis.datasets.ingest import ingest
from analysis.datasets.readers import ReadOptions
from analysis.scoring import ScoreSettings, load_reward_model, score_study
from analysis.store import open_study
from analysis.store.scores import RunHeldError

from ...conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[3]
HARMLESS = str(SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz")


def _holder(study: Path, model_id: str) -> subprocess.Popen:
    """Another process that has started a scoring run of ``model_id`` and is still at it."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from analysis.store import open_study, scores
        st = open_study({str(study)!r}, shared=True)
        scores.start_run(st, "run-live", {model_id!r}, "cpu", {{}})
        st.release()  # a shared study holds the file only while it commits
        print("ready", flush=True)
        time.sleep(60)
    """)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_second_scorer_of_the_same_model_says_which_process_holds_the_run(tiny_rm_dir, tmp_path):
    path = tmp_path / "s.duckdb"
    st = open_study(path)
    ingest(st, HARMLESS, ReadOptions(limit=4))
    st.close()
    settings = ScoreSettings(device="cpu", max_length=64)
    rm = load_reward_model(str(tiny_rm_dir), settings)
    p = _holder(path, rm.model_id)
    try:
        assert p.stdout.readline().strip() == "ready"
        with open_study(path, shared=True) as st:
            with pytest.raises(RunHeldError, match=rf"process {p.pid} on .* is scoring .*\(run run-live since "):
                score_study(st, rm, "pre")
            assert st.scalar("SELECT count(*) FROM scores") == 0  # nothing redone
            assert st.scalar("SELECT count(*) FROM score_runs") == 1  # the refused run left no row
    finally:
        p.kill()
        p.wait()
    with open_study(path) as st:  # the holder is gone: its run is interrupted and this one scores
        res = score_study(st, rm, "pre")
        assert res.n_scored == st.scalar("SELECT count(DISTINCT text_id) FROM texts")
        assert st.df("SELECT status FROM score_runs ORDER BY started_at")["status"].tolist() == ["interrupted", "done"]
