"""The scoring backend interface: the driver writes result frames anti-joined, whatever the engine
yields (a repeated frame, a retried chunk, rows outside the pending set), and refuses bad frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.datasets.readers import ReadOptions
from analysis.errors import ModelError
from analysis.datasets.ingest import ingest
from analysis.scoring import ScoreSettings, load_reward_model, score_study
from analysis.scoring.backends import InProcessBackend, ScoringBackend
from analysis.scoring.registry import make_backend
from analysis.store import open_study
from analysis.store import scores as store_scores

from ...conftest import SAMPLE

HARMLESS = str(SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz")


@pytest.fixture(scope="module")
def rm(tiny_rm_dir):
    return load_reward_model(str(tiny_rm_dir), ScoreSettings(device="cpu", max_length=64, chunk_size=16))


def _study(path, n_pairs=20):
    st = open_study(path)
    ingest(st, HARMLESS, ReadOptions(limit=n_pairs))
    return st


def test_same_frame_written_twice_adds_nothing(rm, tmp_path):
    st = _study(tmp_path / "s.duckdb")
    frame = rm.score_frame(store_scores.pending_texts(st, rm.model_id).head(10))
    assert store_scores.add_scores(st, rm.model_id, frame) == 10
    before = st.df("SELECT * FROM scores ORDER BY text_id")
    assert store_scores.add_scores(st, rm.model_id, frame) == 0
    changed = frame.assign(reward=frame["reward"] + 1.0)  # a retried frame never overwrites
    assert store_scores.add_scores(st, rm.model_id, changed) == 0
    after = st.df("SELECT * FROM scores ORDER BY text_id")
    pd.testing.assert_frame_equal(before, after)
    st.close()


class _Stuttering(InProcessBackend):
    """The real engine, but every frame comes twice and a frame of texts not pending is added
    (as a retried or restarted worker could send)."""

    def __init__(self, rm, stray: pd.DataFrame):
        super().__init__(rm)
        self.stray = stray

    def iter_results(self, texts, progress=None):
        for part in super().iter_results(texts, progress):
            yield part
            yield part.sample(frac=1.0, random_state=0)
        yield self.stray


def test_driver_writes_each_text_once_whatever_the_backend_repeats(rm, tmp_path):
    st = _study(tmp_path / "s.duckdb")
    n = store_scores.n_texts(st)
    first = score_study(st, rm, "pre", limit=5)
    assert first.n_scored == 5
    scored = st.df("SELECT text_id, reward, truncated, n_tokens FROM scores")
    stray = scored.assign(reward=99.0)
    backend = _Stuttering(rm, stray)
    assert isinstance(backend, ScoringBackend)
    commits = []
    res = score_study(st, backend, "pre", on_commit=lambda done, total: commits.append((done, total)))
    assert res.n_skipped == 5 and res.n_scored == n - 5
    assert commits[-1] == (n - 5, n - 5)
    assert st.scalar("SELECT count(*) FROM scores") == n
    assert st.scalar("SELECT max(reward) FROM scores") < 99.0
    runs = st.df("SELECT n_scored FROM score_runs ORDER BY started_at")
    assert runs["n_scored"].tolist() == [5, n - 5]
    # same rewards as a straight in-process run
    ref = rm.score_frame(store_scores.random_study_texts(st, n)).set_index("text_id")["reward"]
    got = st.df("SELECT text_id, reward FROM scores").set_index("text_id")["reward"]
    assert np.max(np.abs(got.reindex(ref.index).to_numpy() - ref.to_numpy())) < 1e-6  # fp32, other batches
    st.close()


class _Broken(InProcessBackend):
    engine = "test"

    def __init__(self, rm, frame):
        super().__init__(rm)
        self.frame = frame

    def iter_results(self, texts, progress=None):
        yield self.frame(texts)


@pytest.mark.parametrize("make,msg", [
    (lambda t: pd.DataFrame({"text_id": t["text_id"], "reward": 0.0}), "without column"),
    (lambda t: pd.DataFrame({"text_id": t["text_id"], "reward": np.nan, "truncated": False, "n_tokens": 3}),
     "non-finite reward"),
])
def test_bad_result_frames_are_refused(rm, tmp_path, make, msg):
    st = _study(tmp_path / "s.duckdb", 5)
    with pytest.raises(ModelError, match=msg):
        score_study(st, _Broken(rm, make), "pre")
    assert st.scalar("SELECT count(*) FROM scores") == 0
    # the run is never `done` (issue 25): failed, with the reason
    run = st.df("SELECT status, reason FROM score_runs").iloc[0]
    assert run["status"] == "failed" and msg in run["reason"], run
    st.close()


def test_make_backend_choices(rm, tiny_rm_dir):
    assert make_backend(rm).engine == "local"
    with pytest.raises(ModelError, match="expected one of local, ray, vllm-server"):
        make_backend(str(tiny_rm_dir), engine="spark")
    with pytest.raises(ModelError, match="takes no option 'gpus'"):
        make_backend(str(tiny_rm_dir), ScoreSettings(device="cpu"), gpus=1)
    with pytest.raises(ModelError, match="served RM"):
        make_backend("http://127.0.0.1:1/v1#m", engine="ray")


def _config(tmp_path, model_lines: str):
    from analysis.pipeline.config import load_config

    (tmp_path / "x.jsonl").write_text("")
    (tmp_path / "c.toml").write_text('study = "s.duckdb"\n[[data]]\nsource = "x.jsonl"\n[[models]]\n'
                                     'role = "pre"\n' + model_lines)
    return load_config(tmp_path / "c.toml")


def test_run_config_engine_options(tmp_path):
    from analysis.pipeline.config import ConfigError

    m = _config(tmp_path, 'spec = "embedded:pre"\nengine = "ray"\ngpus = 8\nray_address = "auto"\n').models[0]
    assert m.engine == "ray" and m.engine_options() == {"address": "auto", "gpus": 8}
    m = _config(tmp_path, 'spec = "http://gpu:8000/v1#rm"\ntokenizer = "/models/rm"\n').models[0]
    assert m.engine is None and m.engine_options() == {"tokenizer": "/models/rm"}
    assert _config(tmp_path, 'spec = "embedded:pre"\n').models[0].engine_options() == {}
    for lines, msg in [('spec = "embedded:pre"\ngpus = 2\n', 'models[1].gpus: gpus is an option of engine = "ray"'),
                       ('spec = "embedded:pre"\nengine = "spark"\n', "models[1].engine"),
                       ('spec = "http://gpu:8000/v1#rm"\nengine = "ray"\n', "is a served RM"),
                       ('spec = "embedded:pre"\nengine = "vllm-server"\n', "needs spec")]:
        with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            _config(tmp_path, lines)
