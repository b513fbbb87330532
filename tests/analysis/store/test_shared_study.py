"""One study shared by the app and a job (issue 19, item 8).

DuckDB lets one process hold the file read-write and no other process open it meanwhile, so sharing
works by holding it only for moments (analysis/store/core.py): these tests put a real scoring job
(a subprocess with the tiny real RM) and the app (App.run_test, keys) on one study at the same time
and check that nothing is lost, that summary/export run while the app is open, and that a chmod 444
file opens read-only by itself.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from analysis.errors import StudyLockedError
from analysis.store import open_study
from analysis.store.schema import SCHEMA_VERSION
from analysis.datasets.synth import make_synthetic_study

ROOT = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               COLUMNS="200", **extra)
    return env


def rmtui(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmtui", *args], capture_output=True, text=True,
                          env=_env(**env), timeout=300)


def make_app(path, **kw):
    from rmtui.app import RmtuiApp

    kw.setdefault("keymap", Path(path).parent / "no-keymap.toml")
    return RmtuiApp(path, **kw)


async def settle(pilot, n=3):
    for _ in range(n):
        await pilot.pause()


@pytest.fixture(scope="module")
def synth_template(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("shared") / "template.duckdb"
    make_synthetic_study(p, 300, seed=5, with_models=False)
    return p


@pytest.fixture
def study(synth_template, tmp_path) -> Path:
    p = tmp_path / "study.duckdb"
    shutil.copy(synth_template, p)
    return p


# -- the connection module -----------------------------------------------------------------------
def _hold_in_other_process(path: Path, seconds: float) -> subprocess.Popen:
    """A process that opens the study read-write, says so, holds it ``seconds`` and exits."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(path)!r})
        print('held', flush=True)
        time.sleep({seconds})
        con.close()
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_shared_study_holds_the_file_only_while_it_works(study):
    st = open_study(study, shared=True)
    try:
        assert not st.is_open
        assert st.meta("schema_version")
        assert not st.is_open  # closed again after the read: another process can open the file now
        with st.hold():
            assert st.is_open
            with st.transaction() as cur:  # re-entrant: the inner work reuses the connection
                cur.execute("INSERT OR REPLACE INTO study VALUES ('probe', 'x')")
            assert st.is_open
        assert not st.is_open
        with open_study(study, read_only=True, lock_timeout=0) as other:
            assert other.meta("probe") == "x"
    finally:
        st.close()


def test_a_job_keeps_the_file_until_another_process_waits_for_it(study):
    """linger=None (what rmtui score uses): alone, one open for the whole run; when another process
    waits for the file the idle connection is closed within moments and that process gets in."""
    st = open_study(study, shared=True, linger=None)
    try:
        for _ in range(5):
            assert st.meta("schema_version")
        assert st.is_open and st.n_opens == 1
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from analysis.store import open_study
            with open_study({str(study)!r}, read_only=True, lock_timeout=20) as s:
                print(s.meta('schema_version'), s.n_lock_waits > 0)
        """)], capture_output=True, text=True, env=_env(), timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [str(SCHEMA_VERSION), "True"]  # it had to wait, and got in
        assert time.perf_counter() - t0 < 20
        assert not st.is_open  # the job let go
        assert st.meta("schema_version") and st.n_opens == 2  # and opens again for its next commit
    finally:
        st.close()
    assert not (study.parent / (study.name + ".waiting")).exists()


def test_open_waits_for_a_short_lock_and_names_a_long_one(study):
    holder = _hold_in_other_process(study, 1.0)
    try:
        t0 = time.perf_counter()
        with open_study(study, lock_timeout=20) as st:  # waits for the holder, then opens
            waited = time.perf_counter() - t0
            assert st.meta("schema_version") and st.n_lock_waits > 0
        assert 0.3 < waited < 15
    finally:
        holder.wait(20)
    holder = _hold_in_other_process(study, 30)
    try:
        t0 = time.perf_counter()
        with pytest.raises(StudyLockedError) as e:
            open_study(study, lock_timeout=0.3)
        assert time.perf_counter() - t0 < 5
        assert f"process {holder.pid}" in e.value.message and "waited 0.3 s" in e.value.message
    finally:
        holder.kill()
        holder.wait(10)


# -- a scoring job and the app on one study --------------------------------------------------------
async def test_job_and_app_write_one_study_and_nothing_is_lost(study, tiny_rm_dir):
    from rmtui.screens.entry_list import ListScreen

    with open_study(study, read_only=True) as st:
        n_texts = int(st.scalar("SELECT count(DISTINCT text_id) FROM texts"))
    job = subprocess.Popen(
        [sys.executable, "-m", "rmtui", "score", "-s", str(study), "-m", str(tiny_rm_dir), "--role", "pre",
         "--device", "cpu", "--chunk-size", "8", "--name", "tiny"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    tagged: list[tuple[str, str]] = []
    during_job = 0
    try:
        # wait until the job is scoring (its first chunk committed) before the app opens the study
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            with open_study(study, read_only=True) as st:
                if st.scalar("SELECT count(*) FROM scores"):
                    break
            time.sleep(0.2)
        assert job.poll() is None, "the job ended before the app could join: " + job.stdout.read()
        app = make_app(study)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, ListScreen), app.screen  # opened while the job scores
            await pilot.press("x")  # all pairs
            await settle(pilot)
            el = app.screen.entries
            k = 0
            while job.poll() is None or k < 6:
                pid = el.current_pair
                tag = ["label-noise", "rm-error", "ambiguous", "interesting"][k % 4]
                await pilot.press(str(k % 4 + 1))  # a tag write while the job commits chunks
                await pilot.pause()
                tagged.append((pid, tag))
                if job.poll() is None:
                    during_job += 1
                await pilot.press("down")
                await pilot.pause()
                k += 1
                assert k < 2000
            app.watch_study()  # the job's last commits (the app's 1 s timer looks too)
            reloads = app.n_watch_reloads
            # rmtui summary (read-only) runs while the app is open
            r = rmtui("summary", "-s", str(study))
            assert r.returncode == 0, r.stdout + r.stderr
            assert "Traceback" not in r.stdout + r.stderr
            await app.action_quit()
        out = job.stdout.read()
        assert job.wait(120) == 0, out
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(10)
    assert during_job >= 3, f"only {during_job} tags were written while the job ran"
    assert reloads >= 1  # the list saw the job's commits
    with open_study(study, read_only=True) as st:
        scored = st.df("SELECT text_id, count(*) AS n FROM scores GROUP BY text_id")
        tags = {(p, t) for p, t in st.execute("SELECT pair_id, tag FROM triage").fetchall()}
        runs = st.df("SELECT n_scored, started_at, finished_at FROM score_runs")
        first_tag = st.scalar("SELECT min(updated_at) FROM triage")
    assert runs["started_at"][0] < first_tag < runs["finished_at"][0]  # the app tagged while the job scored
    assert len(scored) == n_texts and set(scored["n"]) == {1}  # every text scored once
    assert set(tagged) <= tags and len(set(tagged)) == len(tagged)  # every tag stored
    assert runs["n_scored"].tolist() == [n_texts] and runs["finished_at"].notna().all()


async def test_summary_and_export_run_while_the_app_is_open(study, tmp_path):
    from rmtui.screens.entry_list import ListScreen

    app = make_app(study)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ListScreen)
        await pilot.press("x", "1")  # a tag written by the app ...
        await settle(pilot)
        r = rmtui("summary", "-s", str(study))
        assert r.returncode == 0, r.stdout + r.stderr
        out = tmp_path / "tagged.jsonl"
        r = rmtui("export", "-s", str(study), "-o", str(out), "--tag", "label-noise")
        assert r.returncode == 0, r.stdout + r.stderr
        assert len(out.read_text().splitlines()) == 1  # ... is in the export made meanwhile
        await app.action_quit()


async def test_a_read_only_study_file_opens_read_only_by_itself(study):
    """chmod 444 means read-only: the app opens it so without --read-only. Tests run as root, and root
    may write any file (os.access says yes), so the mode bits are what is checked."""
    from rmtui.screens.entry_list import ListScreen

    before = study.read_bytes()
    study.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        app = make_app(study)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, ListScreen), app.screen
            assert app.service.read_only and "read-only" in app.sub_title
            await pilot.press("x", "1")  # a tag: refused with a message, not written
            await settle(pilot)
            assert app.screen.__class__.__name__ == "ErrorDialog" and "read-only" in app.screen.message
            await app.action_quit()
    finally:
        study.chmod(0o644)
    assert study.read_bytes() == before
