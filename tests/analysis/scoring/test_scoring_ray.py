"""The Ray engine on a real local Ray cluster (CPU, one node, 2 actors) with a tiny real RM:
rewards equal the in-process engine, an actor killed mid-job, the driver SIGKILLed and rerun, a
model that differs on the workers refused, Ray missing -> one clear line.

Ray is the ``ray`` extra (``pip install -e ".[dev,ray]"``, as CI installs it); these tests fail,
not skip, without it. One cluster for the module; its session files are removed after it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import ray
from typer.testing import CliRunner

from analysis.datasets.readers import ReadOptions
from analysis.errors import ModelError
from analysis.datasets.ingest import ingest
from analysis.scoring import ScoreSettings, load_reward_model, score_study
from analysis.store import open_study
from analysis.store import scores as store_scores

from ...conftest import ROOT, SAMPLE
from ...helpers.tiny_rm import make_tiny_rm

HARMLESS = str(SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz")
SETTINGS = dict(device="cpu", max_length=64, chunk_size=8)
# a throwaway cluster on loopback: no auth token (none written to ~/.ray, none to pass to the
# subprocess driver that joins it)
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
       "COLUMNS": "200", "OMP_NUM_THREADS": "1", **NO_AUTH}


# one worker runs this module under pytest-xdist (--dist loadgroup): its module fixture is made once
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local one-node Ray: 3 logical CPUs, so 2 one-CPU actors leave one for Ray Data."""
    temp = tempfile.mkdtemp(prefix="rmtui-ray-", dir="/tmp")  # short: Ray's socket paths must fit
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", *NO_AUTH)}
    os.environ.update({"PYTHONPATH": str(ROOT), **NO_AUTH})  # the workers import this checkout
    assert not ray.is_initialized()
    # one node, this machine (Ray maps 127.0.0.1 to the node's own address; nothing joins from outside)
    ray.init(num_cpus=3, num_gpus=0, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _study(path, n_pairs=16):
    st = open_study(path)
    ingest(st, HARMLESS, ReadOptions(limit=n_pairs))
    return st


def _reference(model_dir, st) -> np.ndarray:
    """In-process rewards of every study text, in text_id order."""
    rm = load_reward_model(str(model_dir), ScoreSettings(**SETTINGS))
    texts = store_scores.pending_texts(st, "none")
    return rm.score_frame(texts).sort_values("text_id")["reward"].to_numpy()


def _scores(st):
    return st.df("SELECT text_id, reward FROM scores ORDER BY text_id")


def test_cli_ray_rewards_equal_in_process(cluster, tiny_rm_dir, tmp_path):
    from rmtui.cli import app

    path = tmp_path / "s.duckdb"
    _study(path).close()
    r = CliRunner().invoke(app, ["score", "--study", str(path), "--model", str(tiny_rm_dir), "--role", "pre",
                                 "--engine", "ray", "--actors", "2", "--chunk-size", "8", "--max-length", "64"])
    assert r.exit_code == 0, r.output
    assert "on Ray: 2 actor(s), 0 GPU and 1 CPU each" in r.output
    st = open_study(path)
    n = store_scores.n_texts(st)
    got = _scores(st)
    assert len(got) == n and got["text_id"].is_unique
    assert f"scored {n:,}, skipped 0" in r.output
    ref = _reference(tiny_rm_dir, st)
    assert np.max(np.abs(got["reward"].to_numpy() - ref)) < 1e-5
    rec = st.df("SELECT settings FROM models")["settings"][0]
    assert '"engine": "ray"' in rec and '"ray_actors": 2' in rec
    # the Ray run's model id is the in-process one (same code, same kernels): the cache is shared
    local = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(**SETTINGS))
    assert local.n_scored == 0 and local.n_skipped == n
    st.close()


def test_actor_killed_mid_job_every_text_once(cluster, tiny_rm_dir, tmp_path):
    marker = tmp_path / "crashed"
    st = _study(tmp_path / "s.duckdb")
    n = store_scores.n_texts(st)
    res = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(**SETTINGS), engine="ray",
                      engine_options={"actors": 2, "_crash_marker": str(marker)})
    assert marker.exists(), "no actor died: the test did not test a restart"
    assert res.n_scored == n
    got = _scores(st)
    assert len(got) == n and got["text_id"].is_unique
    assert np.max(np.abs(got["reward"].to_numpy() - _reference(tiny_rm_dir, st))) < 1e-5
    st.close()


DRIVER = """
import sys
from analysis.scoring import ScoreSettings, score_study
from analysis.store import open_study
st = open_study(sys.argv[1])
score_study(st, sys.argv[2], "pre", settings=ScoreSettings(device="cpu", max_length=64, chunk_size=4),
            engine="ray", engine_options={"address": sys.argv[3], "actors": 1, "_batch_delay_s": 0.5},
            on_commit=lambda done, total: print(f"committed {done}/{total}", flush=True))
print("finished", flush=True)
"""


def test_driver_sigkilled_then_rerun_resumes(cluster, tiny_rm_dir, tmp_path):
    path = tmp_path / "s.duckdb"
    st = _study(path)
    n = store_scores.n_texts(st)
    st.close()
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(path), str(tiny_rm_dir), cluster], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, commits = [], 0
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("committed "):
                commits += 1
                if commits == 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
    finally:
        proc.wait(timeout=180)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    st = open_study(path)
    kept = st.scalar("SELECT count(*) FROM scores")
    assert 8 <= kept < n, "".join(lines)  # two 4-text chunks committed, the job not finished
    assert st.scalar("SELECT count(*) FROM score_runs WHERE finished_at IS NULL") == 1
    # both jobs on one actor: what the test checks (the killed driver keeps exactly its committed
    # chunks, the rerun scores only the rest) does not depend on the pool size, and each actor is a
    # process that imports torch and loads the model. One actor also runs the chunks one after another:
    # after the 2nd commit, 6 chunks of 0.5 s remain, so the kill always lands mid-job
    res = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(**SETTINGS), engine="ray",
                      engine_options={"actors": 1})
    assert res.n_skipped == kept and res.n_scored == n - kept
    got = _scores(st)
    assert len(got) == n and got["text_id"].is_unique
    assert np.max(np.abs(got["reward"].to_numpy() - _reference(tiny_rm_dir, st))) < 1e-5
    st.close()


def test_model_changed_on_the_workers_is_refused(cluster, tmp_path):
    model = make_tiny_rm(tmp_path / "rm", seed=0)
    other = make_tiny_rm(tmp_path / "other", seed=1)
    st = _study(tmp_path / "s.duckdb", 4)
    from analysis.scoring.registry import make_backend

    backend = make_backend(str(model), ScoreSettings(**SETTINGS), engine="ray", actors=1)
    # the workers will see other weights under the same path (a node with another copy)
    shutil.copy(other / "model.safetensors", model / "model.safetensors")
    with pytest.raises(ModelError, match=rf"driver expects {backend.model_id}; give every node the same"):
        score_study(st, backend, "pre")
    assert st.scalar("SELECT count(*) FROM scores") == 0
    st.close()


BLOCK_RAY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
sys.meta_path.insert(0, Block())
from rmtui.cli import main
sys.argv = ["rmtui"] + sys.argv[1:]
main()
"""


def test_ray_missing_says_how_to_install(tiny_rm_dir, tmp_path):
    path = tmp_path / "s.duckdb"
    _study(path, 2).close()
    r = subprocess.run([sys.executable, "-c", BLOCK_RAY, "score", "--study", str(path), "--model",
                        str(tiny_rm_dir), "--role", "pre", "--engine", "ray"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Ray not installed: --engine ray needs Ray Data, which is not installed: pip install 'rmtui[ray]'" in out
    assert "Traceback" not in out


def test_bench_scoring_engine_ray(cluster, tiny_rm_dir):
    from rmtui.cli import app

    r = CliRunner().invoke(app, ["bench", "scoring", "--engine", "ray", "--model", str(tiny_rm_dir), "--n", "24",
                                 "--max-length", "64", "--actors", "1", "--chunk-size", "8"])
    assert r.exit_code == 0, r.output
    # one actor (a process that imports torch): the pool size of a Ray job is checked above
    assert "in-process (cpu): " in r.output and "Ray (ray: 1 actor(s), 0 GPU, 2 CPU each): " in r.output
    assert "agree, tolerance 1e-05" in r.output and "ratio Ray/in-process " in r.output
