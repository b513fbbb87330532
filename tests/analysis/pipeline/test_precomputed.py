"""Precomputed results (issue 28): shipped scores, feature values and similarities are taken only
after a recomputed sample agrees; a drifted or altered set is never used, and the results equal
those computed here either way. The demo's own shipped set is checked against the real embedded
models and featurizers, so a change to either that forgets to rebuild it fails here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.pipeline.run import run_config
from analysis.store import open_study
from analysis.store.precomputed import MANIFEST, SCORES, VERIFY_N, Precomputed, _sha256, build
from tests.conftest import ROOT, SAMPLE

HH = SAMPLE / "hh-rlhf"


def _config(tmp_path: Path, pre_dir, post_dir, study: Path, precomputed: Path | None = None) -> Path:
    data = "".join(f'[[data]]\nsource = "{HH / (f + ".jsonl.gz")}"\nlimit = 12\n\n'
                   for f in ("harmless-base-test", "helpful-base-test"))
    models = "".join(f'[[models]]\nspec = "{d}"\nrole = "{r}"\ndevice = "cpu"\nmax_length = 128\n'
                     for d, r in ((pre_dir, "pre"), (post_dir, "post")))
    text = (f'study = "{study}"\n' + (f'precomputed = "{precomputed}"\n' if precomputed else "") + data + models
            + '[[featurizers]]\nspec = "heuristic"\n\n[fit]\n\n'
            + '[rewrite]\nrewriter = "rules"\nn = 24\nseed = 0\nsides = ["chosen", "rejected"]\n')
    p = tmp_path / f"{study.stem}.toml"
    p.write_text(text)
    return p


# one worker runs this module under pytest-xdist (--dist loadgroup): its module fixture is made once
pytestmark = pytest.mark.xdist_group("precomputed")


@pytest.fixture(scope="module")
def computed(tmp_path_factory, tiny_rm_dir, tiny_rm_dir_b):
    """A study computed here from scratch, and its results written as a precomputed folder."""
    d = tmp_path_factory.mktemp("precomputed")
    study = d / "computed.duckdb"
    run_config(_config(d, tiny_rm_dir, tiny_rm_dir_b, study))
    build(study, d / "results", featurizers=("heuristic",))
    return study, d / "results"


def _tables(study: Path) -> dict[str, pd.DataFrame]:
    with open_study(study, read_only=True) as st:
        return {
            "scores": st.df("SELECT model_id, text_id, reward, truncated, n_tokens FROM scores ORDER BY 1, 2"),
            "features": st.df("SELECT featurizer, text_id, name, value FROM features ORDER BY 1, 2, 3"),
            "rewrites": st.df("SELECT rewrite_id, new_text_id, similarity FROM rewrites ORDER BY 1"),
        }


def _same_results(a: Path, b: Path) -> None:
    ta, tb = _tables(a), _tables(b)
    for k in ("scores", "features", "rewrites"):
        assert len(ta[k]) == len(tb[k]) and len(ta[k]), k
        num = [c for c in ta[k].columns if c in ("reward", "value", "similarity")]
        keys = [c for c in ta[k].columns if c not in num]
        assert ta[k][keys].equals(tb[k][keys]), k
        for c in num:
            assert (ta[k][c] - tb[k][c]).abs().max() <= 1e-5, (k, c)


def _score_runs(study: Path) -> pd.DataFrame:
    with open_study(study, read_only=True) as st:
        runs = st.df("SELECT r.settings, r.status, m.role FROM score_runs r JOIN models m USING (model_id) "
                     "ORDER BY m.role")
    runs["pre"] = [json.loads(s).get("precomputed") for s in runs["settings"]]
    return runs


def test_verified_precomputed_results_are_taken_and_equal_the_computed_ones(tmp_path, computed, tiny_rm_dir,
                                                                            tiny_rm_dir_b):
    ref, results = computed
    study = tmp_path / "shipped.duckdb"
    res = run_config(_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, study, results))
    _same_results(ref, study)
    with open_study(study, read_only=True) as st:
        n_texts = st.scalar("SELECT count(DISTINCT text_id) FROM texts")
    runs = _score_runs(study)
    assert list(runs["status"]) == ["done", "done"]
    for rec in runs["pre"]:
        assert rec["verified"] is True and rec["n_checked"] == VERIFY_N
        assert rec["n_taken_here"] == n_texts - VERIFY_N and rec["max_abs_diff"] <= 1e-5
    feat = res.step("featurize:heuristic").summary
    assert feat["precomputed_checks"][0]["verified"] and feat["precomputed_checks"][0]["n_taken"] == n_texts - VERIFY_N
    rw = res.step("rewrite").summary["precomputed_checks"]
    whats = {c["what"] for c in rw}
    assert any(w.startswith("similarity") for w in whats) and {"pre", "post"} <= whats, whats
    assert all(c["verified"] for c in rw)


def _rewrite_with_manifest(folder: Path, name: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(folder / name, index=False)
    m = json.loads((folder / MANIFEST).read_text())
    m["files"][name]["sha256"] = _sha256(folder / name)
    (folder / MANIFEST).write_text(json.dumps(m))


def test_drifted_precomputed_values_are_not_used_and_the_results_are_computed_here(tmp_path, computed, tiny_rm_dir,
                                                                                   tiny_rm_dir_b):
    """A set made by other weights (every pre reward off by 0.25), with a manifest that matches its
    files: the recomputed sample disagrees, so nothing of that model is taken; the post model's is."""
    ref, results = computed
    drifted = tmp_path / "drifted"
    shutil.copytree(results, drifted)
    s = pd.read_parquet(drifted / SCORES)
    with open_study(ref, read_only=True) as st:
        pre_id = st.scalar("SELECT model_id FROM models WHERE role = 'pre'")
    s.loc[s["model_id"] == pre_id, "reward"] += 0.25
    _rewrite_with_manifest(drifted, SCORES, s)
    study = tmp_path / "drifted.duckdb"
    res = run_config(_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, study, drifted))
    _same_results(ref, study)
    runs = _score_runs(study).set_index("role")
    assert runs.loc["pre", "pre"]["verified"] is False and "differ by up to 0.25" in runs.loc["pre", "pre"]["reason"]
    assert runs.loc["post", "pre"]["verified"] is True
    assert "not used" in res.step("score:pre").message and "computed here instead" in res.step("score:pre").message


def test_an_altered_file_is_never_read(tmp_path, computed, tiny_rm_dir, tiny_rm_dir_b):
    """A file changed after its manifest was written (a bad copy, an edit): nothing of the folder is used."""
    ref, results = computed
    altered = tmp_path / "altered"
    shutil.copytree(results, altered)
    s = pd.read_parquet(altered / SCORES)
    s["reward"] += 0.25
    s.to_parquet(altered / SCORES, index=False)  # the manifest still holds the old sha256
    pre = Precomputed.load(altered)
    assert pre.problem and "scores.parquet" in pre.problem and "sha256" in pre.problem
    study = tmp_path / "altered.duckdb"
    res = run_config(_config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, study, altered))
    _same_results(ref, study)
    assert all(rec["verified"] is False for rec in _score_runs(study)["pre"])
    assert "sha256" in res.step("score:post").message


def test_demo_prints_its_timing_table_and_compute_all_ignores_the_shipped_results(tmp_path, computed, tiny_rm_dir,
                                                                                 tiny_rm_dir_b):
    from rmtui.cli import app

    _, results = computed
    p = _config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, tmp_path / "unused.duckdb", results)
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    r = runner.invoke(app, ["demo", "--study", str(tmp_path / "d.duckdb"), "--no-tui", "--config", str(p)], env=env)
    assert r.exit_code == 0, r.output
    table = r.output[r.output.index("demo: seconds per step"):]
    for row in ("score:pre", "featurize:heuristic", "rewrite", "all steps", "summary", "total"):
        assert row in table, row
    with open_study(tmp_path / "d.duckdb", read_only=True) as st:
        n_texts = st.scalar("SELECT count(DISTINCT text_id) FROM texts")
    assert f"shipped: pre {n_texts - VERIFY_N:,}" in table, table
    r = runner.invoke(app, ["demo", "--study", str(tmp_path / "e.duckdb"), "--no-tui", "--compute-all",
                            "--config", str(p)], env=env)
    assert r.exit_code == 0, r.output
    table = r.output[r.output.index("demo: seconds per step"):]
    assert "shipped" not in table and table.count("computed here") >= 6


def test_bench_demo_times_both_builds_and_finds_the_same_figures(tmp_path, computed, tiny_rm_dir, tiny_rm_dir_b):
    from rmtui.cli import app

    _, results = computed
    p = _config(tmp_path, tiny_rm_dir, tiny_rm_dir_b, tmp_path / "unused.duckdb", results)
    r = CliRunner().invoke(app, ["bench", "demo", "--pairs", "6", "--config", str(p)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    out = " ".join(r.output[r.output.index("bench demo:"):].split())  # a line may wrap at the console's width
    assert "shipped results" in out and "computed here" in out and "ratio" in out
    for row in ("score:pre", "score:post", "fit", "rewrite", "total"):
        assert row in out, row
    assert "counts that differ: 0" in out
    worst = float(out.split("largest difference ")[1].split()[0].rstrip(";"))
    assert worst <= 1e-4, out


def test_the_demo_shipped_results_match_the_embedded_models_and_featurizers(tmp_path):
    """sample_data/demo-results against the real embedded RMs, heuristic and proxy featurizers, on a
    seeded sample of the demo's texts: a model or featurizer change without a rebuild fails here."""
    from analysis.datasets.ingest import ingest
    from analysis.datasets.readers import ReadOptions
    from analysis.features import featurize_study
    from analysis.scoring import score_study

    folder = ROOT / "sample_data" / "demo-results"
    manifest = json.loads((folder / MANIFEST).read_text())
    study = tmp_path / "s.duckdb"
    with open_study(study) as st:
        for f in ("harmless-base-test", "helpful-online-test"):
            ingest(st, str(HH / f"{f}.jsonl.gz"), ReadOptions(limit=20))
        st.precomputed = Precomputed.load(folder)
        assert st.precomputed.problem is None
        for spec in ("embedded:pre", "embedded:post"):
            res = score_study(st, spec, spec.split(":")[1])
            assert res.model_id in manifest["models"], (spec, res.model_id)
            assert res.n_precomputed > 0 and "matched" in res.precomputed, res.precomputed
        for fz in ("heuristic", "proxy"):
            r = featurize_study(st, fz)
            assert r.n_precomputed > 0 and "matched" in r.precomputed, r.precomputed
