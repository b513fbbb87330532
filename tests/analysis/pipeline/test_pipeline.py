"""`rmtui run CONFIG.toml`: config validation, fingerprinted steps, resume after a kill, demo config."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.pipeline.config import ConfigError, load_config, parse_config
from analysis.errors import RmtuiError
from analysis.pipeline.run import fingerprint, plan_steps, run_config
from analysis.store import open_study

from tests.conftest import ROOT, SAMPLE

HH = SAMPLE / "hh-rlhf"


def write(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def data_block(limit: int = 20, files=("harmless-base-test", "helpful-base-test")) -> str:
    return "".join(f'[[data]]\nsource = "{HH / (f + ".jsonl.gz")}"\nlimit = {limit}\n\n' for f in files)


# ---------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize("body, needle", [
    ('study = "s.duckdb"\n', "data: missing"),
    ('[[data]]\nsource = "nope.jsonl"\n', "data[1].source"),
    ('[[data]]\nsource = "*.nothing"\n', "matches no file"),
    ('[[data]]\nsource = "{f}"\nlimt = 3\n', "data[1].limt: unknown key"),
    ('[[data]]\nsource = "{f}"\nlimit = "3"\n', "data[1].limit: expected int"),
    ('[[data]]\nsource = "{f}"\nlimit = 0\n', "data[1].limit: must be >= 1"),
    ('colour = 1\n[[data]]\nsource = "{f}"\n', "colour: unknown key"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "x"\n', "models[1].role: missing"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "x"\nrole = "pre"\ndtype = "f8"\n', "models[1].dtype"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "a"\nrole = "pre"\n[[models]]\nspec = "b"\nrole = "pre"\n',
     "models[2].name"),
    ('[[data]]\nsource = "{f}"\n[[featurizers]]\nspec = "llm"\nbase_url = "${{RMTUI_TEST_UNSET_VAR}}"\n',
     "featurizers[1].base_url: environment variable RMTUI_TEST_UNSET_VAR is not set"),
    ('[[data]]\nsource = "{f}"\n[[featurizers]]\nspec = "llm"\napi_key = "sk-123"\n',
     "featurizers[1].api_key: secrets do not belong"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "a"\nrole = "pre"\n[rewrite]\nn = 3\nfraction = 0.1\n',
     "rewrite: give exactly one of n"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "a"\nrole = "pre"\n[rewrite]\nn = 3\nsides = ["left"]\n',
     "rewrite.sides[1]"),
    ('[[data]]\nsource = "{f}"\n[fit\n', "not valid TOML"),
    ('[[data]]\nsource = "{f}"\n[[featurizers]]\nspec = "heuristic"\nwokers = 2\n',
     "featurizers[1].wokers: heuristic takes no option 'wokers'; it takes workers"),
    ('[[data]]\nsource = "{f}"\n[[featurizers]]\nspec = "nope"\n', "featurizers[1].spec: unknown labeler"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "a"\nrole = "psot"\n', "models[1].role: 'psot' is not one of"),
    ('[[data]]\nsource = "{f}"\n[[models]]\nspec = "a"\nrole = "pre"\n[rewrite]\nrewriter = "rulez"\nn = 3\n',
     "rewrite.rewriter: 'rulez'"),
])
def test_config_errors_name_the_file_and_key(tmp_path, body, needle):
    p = write(tmp_path, body.format(f=HH / "harmless-base-test.jsonl.gz"))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in e.value.message
    assert needle in e.value.message


def test_config_paths_are_relative_to_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "cfgs"
    sub.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a-test.jsonl").write_text("")
    p = write(sub, 'study = "../out/s.duckdb"\n[[data]]\nsource = "../data/*.jsonl"\n')
    monkeypatch.chdir(ROOT)  # the working directory does not matter
    cfg = load_config(p)
    assert cfg.study.resolve() == (tmp_path / "out" / "s.duckdb").resolve()
    assert [Path(x).resolve() for x in cfg.data[0].paths] == [(tmp_path / "data" / "a-test.jsonl").resolve()]


def test_env_vars_expand_with_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("RMTUI_TEST_MODEL", "llama")
    p = write(tmp_path, f'[[data]]\nsource = "{HH / "harmless-base-test.jsonl.gz"}"\n'
                        '[[featurizers]]\nspec = "llm"\nmodel = "${RMTUI_TEST_MODEL}"\n'
                        'base_url = "${RMTUI_TEST_UNSET_URL:-http://127.0.0.1:9/v1}"\n')
    cfg = load_config(p)
    assert cfg.featurizers[0].options == {"model": "llama", "base_url": "http://127.0.0.1:9/v1"}


def test_shipped_configs_and_print_config_parse(tmp_path, monkeypatch):
    from rmtui.cli import app

    demo = load_config(ROOT / "configs" / "demo.toml")
    assert len(demo.data[0].paths) == 4 and [m.spec for m in demo.models] == ["embedded:pre", "embedded:post"]
    assert demo.rewrite is not None and demo.rewrite.n == 200 and demo.rewrite.seed == 0
    assert demo.heldout == "embedded"
    assert plan_steps(demo)[-3:] == ["fit", "rewrite", "robustness"]

    monkeypatch.setenv("RMTUI_LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("RMTUI_LLM_MODEL", "m")
    paper = load_config(ROOT / "configs" / "paper.toml")
    assert paper.data[0].source == "hf:Anthropic/hh-rlhf"
    assert paper.data[0].data_dirs == ["harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"]
    assert [(m.spec, m.role) for m in paper.models] == [
        ("OpenAssistant/reward-model-deberta-v3-large", "pre"), ("OpenAssistant/reward-model-deberta-v3-large-v2", "post")]
    assert paper.models[0].format == "pair"
    assert paper.rewrite.fraction == 0.01 and paper.rewrite.sample_size(160_800) == 1608
    assert "OPENAI_API_KEY" not in str(paper.featurizers[0].options.values()) or \
        paper.featurizers[0].options["api_key_env"] == "OPENAI_API_KEY"
    from analysis.features.registry import make_featurizer

    for f in paper.featurizers:  # each builds as configured (base_url was a TypeError after scoring)
        fz = make_featurizer(f.spec, **f.options)
        assert getattr(fz, "endpoint", "http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"

    res = CliRunner().invoke(app, ["run", "--print-config"])
    assert res.exit_code == 0, res.output
    import tomllib

    raw = tomllib.loads(res.output)
    cfg = parse_config(raw, base_dir=ROOT)  # the example points at the shipped sample data
    assert len(cfg.data[0].paths) == 4 and cfg.rewrite.n == 200


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint("a", {"x": 1, "y": [1, 2]}) == fingerprint("a", {"y": [1, 2], "x": 1})
    assert fingerprint("a", {"x": 1}) != fingerprint("a", {"x": 2})


# ---------------------------------------------------------------------------------------------
# ingest-only runs (no other module needed)


def test_ingest_steps_skip_when_unchanged_and_rerun_on_edit(tmp_path):
    study = tmp_path / "s.duckdb"
    p = write(tmp_path, f'study = "{study}"\n' + data_block(10))
    r1 = run_config(p)
    assert r1.ran == ["ingest:hh-rlhf/harmless-base-test.jsonl.gz", "ingest:hh-rlhf/helpful-base-test.jsonl.gz"]
    assert r1.steps[0].summary["n_added"] == 10
    r2 = run_config(p)
    assert r2.ran == [] and len(r2.skipped) == 2
    # an edit of one source's settings reruns that step only, and adds only the new rows
    p.write_text(f'study = "{study}"\n' + data_block(10, ("harmless-base-test",))
                 + data_block(15, ("helpful-base-test",)))
    r3 = run_config(p)
    assert r3.ran == ["ingest:hh-rlhf/helpful-base-test.jsonl.gz"]
    assert r3.steps[1].summary == {**r3.steps[1].summary, "n_read": 15, "n_added": 5}
    with open_study(study, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM pairs") == 25
        steps = st.df("SELECT step, fingerprint, seconds FROM steps ORDER BY step")
    assert list(steps.step) == ["ingest:hh-rlhf/harmless-base-test.jsonl.gz", "ingest:hh-rlhf/helpful-base-test.jsonl.gz"]
    # --force redoes the steps (ingest itself adds nothing twice)
    r4 = run_config(p, force=True)
    assert len(r4.ran) == 2 and all(s.summary["n_added"] == 0 for s in r4.steps)


def test_run_cli_prints_each_step_with_its_time(tmp_path):
    from rmtui.cli import app

    study = tmp_path / "s.duckdb"
    p = write(tmp_path, f'study = "{study}"\n' + data_block(5, ("harmless-base-test",)))
    res = CliRunner().invoke(app, ["run", str(p)])
    assert res.exit_code == 0, res.output
    assert "✓ ingest:hh-rlhf/harmless-base-test.jsonl.gz: read 5 pairs, added 5" in res.output
    assert " s)" in res.output and "1 step ran" in res.output
    res = CliRunner().invoke(app, ["run", str(p)])
    assert "up to date" in res.output and "0 steps ran, 1 up to date" in res.output
    bad = write(tmp_path, "[[data]]\nsourc = 1\n", "bad.toml")
    res = CliRunner().invoke(app, ["run", str(bad)])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)


# ---------------------------------------------------------------------------------------------
# full runs (need the scoring, features and fit modules)


def _full_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, *, limit=20, study=None, extra="", chunk=None):
    study = study or tmp_path / "s.duckdb"
    # max_length keeps the tiny models quick on long hh-rlhf contexts (truncated from the left)
    tb = "max_length = 128\n" + (f"chunk_size = {chunk}\n" if chunk else "")
    return write(tmp_path, f'study = "{study}"\n' + data_block(limit) +
                 f'[[models]]\nspec = "{tiny_rm_dir}"\nrole = "pre"\ndevice = "cpu"\n{tb}'
                 f'[[models]]\nspec = "{tiny_rm_dir_b}"\nrole = "post"\ndevice = "cpu"\n{tb}'
                 '[[featurizers]]\nspec = "heuristic"\n\n[fit]\n' + extra)


def test_full_run_then_rerun_does_no_work(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    p = _full_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b)
    r1 = run_config(p)
    assert r1.ran == [*(s for s in r1.ran if s.startswith("ingest:")), "score:pre", "score:post",
                      "featurize:heuristic", "fit"]
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        n_texts = st.scalar("SELECT count(DISTINCT text_id) FROM texts")
        assert st.scalar("SELECT count(*) FROM scores") == 2 * n_texts
        assert st.scalar("SELECT count(*) FROM pair_metrics") == 40
        runs1 = st.scalar("SELECT count(*) FROM score_runs")
        feats1 = st.scalar("SELECT count(*) FROM features")
        steps1 = st.df("SELECT * FROM steps ORDER BY step")
    r2 = run_config(p)
    assert r2.ran == [] and len(r2.skipped) == len(r1.steps)
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM score_runs") == runs1  # no scoring run at all
        assert st.scalar("SELECT count(*) FROM features") == feats1
        assert st.df("SELECT * FROM steps ORDER BY step").equals(steps1)

    # more data: ingest, scoring, featurizing and the fit rerun; scoring does only the new texts
    p.write_text(p.read_text().replace("limit = 20", "limit = 25"))
    r3 = run_config(p)
    assert {"score:pre", "score:post", "featurize:heuristic", "fit"} <= set(r3.ran)
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        n_texts2 = st.scalar("SELECT count(DISTINCT text_id) FROM texts")
        assert st.scalar("SELECT count(*) FROM scores") == 2 * n_texts2
        assert st.scalar("SELECT count(*) FROM pair_metrics") == 50
    new = r3.step("score:pre").summary.get("n_scored")
    if new is not None:
        assert new == n_texts2 - n_texts

    # a changed fit option reruns the fit only
    if r3.step("fit") is not None:
        p.write_text(p.read_text().replace("[fit]\n", "[fit]\n# edited\n"))
        assert run_config(p).ran == []  # a comment is not a setting


def _tables(study: Path) -> dict:
    with open_study(study, read_only=True) as st:
        return {
            "scores": st.df("SELECT model_id IS NOT NULL AS m, text_id, round(reward, 6) AS r FROM scores "
                            "ORDER BY text_id, r"),
            "pm": st.df("SELECT pair_id, regime, agree_pre, agree_post, round(margin_pre, 6) AS a, "
                        "round(margin_post, 6) AS b, round(theta, 4) AS t FROM pair_metrics ORDER BY pair_id"),
            "imprint": st.df("SELECT target, feature, round(estimate, 6) AS e, round(se, 6) AS se FROM imprint "
                             "ORDER BY target, feature"),
        }


def _run_until(cfg: Path, step: str, at_least: int, sig: int, env: dict) -> tuple[int, str]:
    """Start `python -m rmtui run cfg`, send ``sig`` once ``step`` has scored ``at_least`` texts."""
    # a child inherits an ignored SIGINT (a test run started in the background with `&` or nohup);
    # Python then keeps it ignored, as a user who backgrounds `rmtui run` would want, so put back
    # the default for this child: it stands for a run in a terminal
    proc = subprocess.Popen([sys.executable, "-m", "rmtui", "run", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    progress = re.compile(rf"^  {re.escape(step)}: scoring texts: ([\d,]+)/([\d,]+)")
    try:
        for line in proc.stdout:
            seen.append(line)
            m = progress.match(line)
            if m and int(m.group(1).replace(",", "")) >= at_least:
                proc.send_signal(sig)  # once
                break
        out, _ = proc.communicate(timeout=120)
        seen.append(out or "")
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen)


@pytest.mark.slow
def test_interrupted_and_killed_runs_resume_with_identical_results(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # committed chunks of 8 texts; the run prints plain progress lines (every 10 %) when not on a terminal
    pa = _full_config(tmp_path / "a", tiny_rm_dir, tiny_rm_dir_b, limit=20, chunk=8)
    pb = _full_config(tmp_path / "b", tiny_rm_dir, tiny_rm_dir_b, limit=20, chunk=8)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    study = tmp_path / "a" / "s.duckdb"

    # 1. Ctrl-C while scoring with the pre-D RM: a clean stop with a clear message
    rc, out = _run_until(pa, "score:pre", 16, signal.SIGINT, env)
    assert rc == 130, out
    assert "interrupted; rerun to resume" in out and "Traceback" not in out
    with open_study(study, read_only=True) as st:
        done = set(st.df("SELECT step FROM steps").step)
        partial = st.scalar("SELECT count(*) FROM scores")
        total = st.scalar("SELECT count(DISTINCT text_id) FROM texts")
    assert "score:pre" not in done and "fit" not in done
    assert 8 <= partial < total, (partial, total)  # stopped mid-scoring with committed chunks

    # 2. the rerun scores only the rest of pre-D, and is killed (SIGKILL) while scoring with post-D
    rc, out = _run_until(pa, "score:post", 16, signal.SIGKILL, env)
    assert rc == -signal.SIGKILL, out
    assert "· ingest:hh-rlhf/harmless-base-test.jsonl.gz: up to date" in out
    m = re.search(r"✓ score:pre: scored (\d+) texts", out)
    assert m and int(m.group(1)) == total - partial, out
    with open_study(study, read_only=True) as st:
        done = set(st.df("SELECT step FROM steps").step)
        partial_post = st.scalar("SELECT count(*) FROM scores") - total
    assert "score:pre" in done and "score:post" not in done and 8 <= partial_post < total

    # 3. the next run finishes: only post-D's rest, then features and the fit. In this process (the
    # same `rmtui run` command and output): only the interrupted runs need a process of their own
    from rmtui.cli import app

    res = CliRunner().invoke(app, ["run", str(pa)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "· score:pre: up to date" in res.output and "✓ fit" in res.output
    m = re.search(r"✓ score:post: scored (\d+) texts", res.output)
    assert m and int(m.group(1)) == total - partial_post, res.output

    run_config(pb)  # uninterrupted
    a, b = _tables(study), _tables(tmp_path / "b" / "s.duckdb")
    for k in a:
        assert len(a[k]) > 0
        assert a[k].equals(b[k]), k


@pytest.mark.parametrize("fit, needle", [('se = "bogus"\n', "fit.se: 'bogus'"),
                                         ('featurs = ["x"]\n', "fit.featurs: unknown fit option")])
def test_fit_table_mistakes_fail_before_any_step(tmp_path, fit, needle):
    """They failed at the fit step, after ingest, scoring and featurizing had run."""
    study = tmp_path / "s.duckdb"
    p = write(tmp_path, f'study = "{study}"\n' + data_block(3) + '[[models]]\nspec = "embedded:pre"\nrole = "pre"\n'
              '[[models]]\nspec = "embedded:post"\nrole = "post"\n[fit]\n' + fit)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        run_config(p)
    assert not study.exists()


def test_featurize_step_with_failures_is_not_done_and_a_rerun_asks_again(tmp_path, tiny_rm_dir, tiny_rm_dir_b,
                                                                         monkeypatch):
    """An LLM featurizer whose endpoint fails every text labels nothing; the step said done and a rerun
    skipped it (only --force asked again). Now the rerun asks for the failed texts, and the fit reruns.
    An endpoint nobody answers at stops the run at once, naming it (issue 19), keeping earlier steps."""
    import socket

    from tests.fake_openai import FakeOpenAI

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused at once
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    p = _full_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, limit=4).read_text().replace(
        '[[featurizers]]\nspec = "heuristic"\n',
        '[[featurizers]]\nspec = "heuristic"\n[[featurizers]]\nspec = "llm"\n'
        f'base_url = "http://127.0.0.1:{port}/v1"\nmodel = "judge"\nmax_retries = 0\nbackoff_base = 0.01\n')
    cfg = write(tmp_path, p)
    with pytest.raises(RmtuiError, match=f"127.0.0.1:{port}.*cannot connect"):
        run_config(cfg)
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM llm_calls") == 0 and st.scalar("SELECT count(*) FROM scores") > 0
    with FakeOpenAI(port=port, default="500"):  # it answers, and fails every text
        r1 = run_config(cfg)
    step = r1.step("featurize:llm")
    assert step.status == "ran" and step.summary["n_failed"] > 0 and "the next run asks again" in step.message
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        n_failed = st.scalar("SELECT count(*) FROM label_failures")
        assert n_failed == step.summary["n_failed"]
    with FakeOpenAI(port=port):
        r2 = run_config(cfg)
    assert "featurize:llm" in r2.ran and "fit" in r2.ran and "featurize:heuristic" not in r2.ran
    assert r2.step("featurize:llm").summary["n_done"] == n_failed
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM label_failures") == 0
        assert st.scalar("SELECT count(*) FROM features WHERE featurizer = 'llm:judge'") > 0
    assert run_config(cfg).ran == []


def test_rewrite_experiment_step_and_robustness(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    p = _full_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, limit=15,
                     extra='[rewrite]\nrewriter = "rules"\nn = 6\nseed = 0\n')
    r1 = run_config(p)
    assert r1.ran[-2:] == ["rewrite", "robustness"]
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        n_rw = st.scalar("SELECT count(*) FROM rewrites")
        assert n_rw > 0
        assert st.scalar("SELECT count(*) FROM rewrites r WHERE NOT EXISTS "
                         "(SELECT 1 FROM scores s WHERE s.text_id = r.new_text_id)") == 0
    assert run_config(p).ran == []
    with open_study(tmp_path / "s.duckdb", read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM rewrites") == n_rw
    p.write_text(p.read_text().replace("seed = 0", "seed = 1"))
    assert run_config(p).ran == ["rewrite", "robustness"]


def test_demo_builds_once_then_reopens_without_work(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    """`rmtui demo --no-tui` (here on a small config): build, print the summary; a second call does nothing."""
    from rmtui.cli import app

    p = _full_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, limit=10)
    study = tmp_path / "demo.duckdb"
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--study", str(study), "--no-tui", "--config", str(p)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "✓ score:pre" in res.output and "✓ fit" in res.output and "demo study ready" in res.output
    assert "stayed_aligned" in res.output  # the regimes table
    res2 = runner.invoke(app, ["demo", "--study", str(study), "--no-tui", "--config", str(p)], env={"COLUMNS": "200"})
    assert res2.exit_code == 0, res2.output
    assert "0 steps ran" in res2.output and "✓" not in res2.output
    # --rebuild starts from an empty study
    res3 = runner.invoke(app, ["demo", "--study", str(study), "--no-tui", "--rebuild", "--config", str(p)],
                         env={"COLUMNS": "200"})
    assert res3.exit_code == 0 and "✓ score:pre" in res3.output


def test_a_changed_model_folder_reruns_its_scoring(tmp_path, tiny_rm_dir, tiny_rm_dir_b):
    """Retraining a local RM in place (same path, new weights) is not "up to date"."""
    import shutil

    pre = tmp_path / "pre-rm"
    shutil.copytree(tiny_rm_dir, pre)
    p = _full_config(tmp_path, pre, tiny_rm_dir_b, limit=5)
    run_config(p)
    assert run_config(p).ran == []
    shutil.rmtree(pre)
    shutil.copytree(tiny_rm_dir_b, pre)  # "retrained": other weights in the same folder
    for f in pre.iterdir():
        os.utime(f, ns=(time.time_ns(), time.time_ns()))
    r = run_config(p)
    assert "score:pre" in r.ran and "score:post" not in r.ran and "fit" in r.ran
    assert r.step("score:pre").summary["n_scored"] == r.step("score:pre").summary["n_texts"]  # new model id


def test_a_failing_step_names_itself_and_keeps_earlier_steps(tmp_path):
    study = tmp_path / "s.duckdb"
    p = write(tmp_path, f'study = "{study}"\n' + data_block(5, ("harmless-base-test",))
              + f'[[data]]\nsource = "{tmp_path / "bad-test.jsonl"}"\nstrict = true\n')
    (tmp_path / "bad-test.jsonl").write_text('{"chosen": "x"}\n')
    with pytest.raises(RmtuiError) as e:
        run_config(p)
    assert e.value.message.startswith("step ingest:") and "bad-test.jsonl" in e.value.message
    with open_study(study, read_only=True) as st:
        assert list(st.df("SELECT step FROM steps").step) == ["ingest:hh-rlhf/harmless-base-test.jsonl.gz"]
