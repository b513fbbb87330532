"""The rewrite experiment, the robustness metrics and the one-entry rewrite, on real data, real (tiny)
reward models scored by the real engine (``analysis.scoring``) and the real heuristic featurizer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.errors import RmtuiError
from analysis.metrics import robustness as M
from analysis.rewrite.experiment import (SIDES, discard_rewrite, experiment_id, fit_robustness, keep_rewrite, rewrite_one,
                                 robustness_summary, run_experiment, sample_pairs)
from analysis.rewrite import RULE_PERTURBATIONS, make_rewriter

from tests.conftest import SAMPLE

HARMLESS = SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def n_scores(st) -> int:
    return int(st.scalar("SELECT count(*) FROM scores"))


BASE_N = 20          # pairs rewritten (both sides) once per module, in the base study


@pytest.fixture(scope="module")
def base_study(tmp_path_factory, tiny_rm_dir, tiny_rm_dir_b):
    """30 real harmless-base pairs, scored by two tiny real RMs (pre, post), featurized by the heuristic
    featurizer, and one rules experiment (seed 0, 20 pairs, both sides) through the default engine.
    Built once; each test works on its own copy of the file."""
    from analysis.datasets.readers import ReadOptions
    from analysis.features import featurize_study
    from analysis.datasets.ingest import ingest
    from analysis.scoring import score_study
    from analysis.store import open_study

    path = tmp_path_factory.mktemp("robust") / "base.duckdb"
    with open_study(path) as st:
        ingest(st, str(HARMLESS), ReadOptions(limit=30))
        score_study(st, str(tiny_rm_dir), "pre", name="tiny-pre")
        score_study(st, str(tiny_rm_dir_b), "post", name="tiny-post")
        featurize_study(st, "heuristic")
        res = run_experiment(st, "rules", n=BASE_N, seed=0)
        assert res.n_done == 2 * BASE_N and res.n_failed == 0, res
        st.con.execute("CHECKPOINT")
    return path, res


@pytest.fixture
def scored(base_study, study_path):
    import shutil

    from analysis.scoring import load_study_models
    from analysis.store import open_study

    shutil.copy(base_study[0], study_path)
    st = open_study(study_path)
    yield st, load_study_models(st, "cpu"), base_study[1]
    st.close()


# -- pure metrics: hand-computed cases ----------------------------------------------------------

def test_reward_changes_hand_computed():
    rw = pd.DataFrame({"rewrite_id": ["a", "b"], "side": ["chosen", "rejected"],
                       "original_text_id": ["c1", "r2"], "new_text_id": ["c1x", "r2x"],
                       "other_text_id": ["r1", "c2"]})
    sc = pd.DataFrame({"model_id": "post", "role": "post",
                       "text_id": ["c1", "c1x", "r1", "c2", "r2", "r2x"],
                       "reward": [1.0, -0.5, 0.2, 0.0, 0.5, -1.0]})
    ch = M.reward_changes(rw, sc).set_index("rewrite_id")
    # a: chosen 1.0 -> -0.5 against rejected 0.2: margin 0.8 -> -0.7: became misaligned
    assert ch.loc["a", "change"] == pytest.approx(-1.5)
    assert (ch.loc["a", "margin_before"], ch.loc["a", "margin_after"]) == pytest.approx((0.8, -0.7))
    assert ch.loc["a", "became_misaligned"] == 1 and ch.loc["a", "became_aligned"] == 0
    # b: rejected 0.5 -> -1.0 against chosen 0.0: margin -0.5 -> 1.0: became aligned
    assert (ch.loc["b", "margin_before"], ch.loc["b", "margin_after"]) == pytest.approx((-0.5, 1.0))
    assert ch.loc["b", "became_aligned"] == 1 and ch.loc["b", "became_misaligned"] == 0
    assert M.flip_label(0.8, -0.7) == "aligned->misaligned" and M.flip_label(-1, -2) == "stays misaligned"


def test_feature_flips_sign_and_indicators():
    rw = pd.DataFrame({"rewrite_id": ["a", "b", "c"], "side": ["chosen", "rejected", "chosen"],
                       "original_text_id": ["o1", "o2", "o3"], "new_text_id": ["n1", "n2", "n3"]})
    f = pd.DataFrame({"text_id": ["o1", "n1", "o2", "n2", "o3", "n3"], "feature": "vader.sentiment",
                      "value": [1, 0, -1, 1, 0, 0]})
    fl = M.feature_flips(rw, f).set_index("rewrite_id")
    assert fl.loc["a", "flip"] == 1 and fl.loc["b", "flip"] == -2 and fl.loc["c", "flip"] == 0  # before - after
    ind = M.flip_indicators(fl.reset_index())
    assert ind.loc["a"].to_dict() == {"chosen_sentiment_down": 1, "chosen_sentiment_up": 0,
                                      "rejected_sentiment_down": 0, "rejected_sentiment_up": 0}
    assert ind.loc["b", "rejected_sentiment_up"] == 1 and ind.loc["c"].sum() == 0


def test_sensitivity_interval_hand_computed():
    from scipy import stats

    x = [0.5, 1.5, 1.0, 2.0]
    ch = pd.DataFrame({"rewrite_id": list("abcd"), "perturbation": "apology", "side": "chosen",
                       "model_id": "m", "role": "post", "change": x})
    s = M.sensitivity(ch)
    row = s[s["side"] == "chosen"].iloc[0]
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2
    assert row["mean_change"] == pytest.approx(1.25) and row["n"] == 4
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((1.25 - half, 1.25 + half))
    assert set(s["side"]) == {"chosen", "all"}


def test_robustness_lpm_recovers_planted_effects():
    rng = np.random.default_rng(7)
    n = 4000
    side = rng.choice(["chosen", "rejected"], n)
    chosen = side == "chosen"
    c_down = (rng.random(n) < 0.3) & chosen
    c_up = (rng.random(n) < 0.2) & chosen & ~c_down
    r_up = (rng.random(n) < 0.3) & ~chosen
    r_down = (rng.random(n) < 0.2) & ~chosen & ~r_up
    # planted: chosen turning less positive +0.12, rejected turning more positive +0.10, others 0
    p = 0.05 + 0.12 * c_down + 0.10 * r_up
    y = (rng.random(n) < p).astype(int)
    ids = [f"r{i}" for i in range(n)]
    changes = pd.DataFrame({"rewrite_id": ids, "side": side, "became_misaligned": y,
                            "became_aligned": (rng.random(n) < 0.05).astype(int)})
    ind = pd.DataFrame({"chosen_sentiment_down": c_down, "chosen_sentiment_up": c_up,
                        "rejected_sentiment_down": r_down, "rejected_sentiment_up": r_up,
                        "chosen_rare_up": np.arange(n) < 3}, index=ids).astype(int)
    res = M.robustness_lpm(changes, ind)
    t = res.table[res.table["outcome"] == "became_misaligned"].set_index("term")
    for term, true in (("chosen_sentiment_down", 0.12), ("rejected_sentiment_up", 0.10)):
        assert t.loc[term, "ci_low"] < true < t.loc[term, "ci_high"]
        assert t.loc[term, "p"] < 1e-4
    for term in ("chosen_sentiment_up", "rejected_sentiment_down"):
        assert t.loc[term, "ci_low"] < 0 < t.loc[term, "ci_high"]
    assert (t["se_type"] == "HC1").all() and (t["n"] == n).all()
    assert "chosen_rare_up" not in t.index and any("chosen_rare_up" in d for d in res.dropped)
    # HC1 by hand for the same design
    X = np.column_stack([np.ones(n), ind.drop(columns="chosen_rare_up").to_numpy(float),
                         (side == "rejected").astype(float)])
    order = ["intercept", "chosen_sentiment_down", "chosen_sentiment_up", "rejected_sentiment_down",
             "rejected_sentiment_up", "side_rejected"]
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    cov = bread @ (X.T * e ** 2) @ X @ bread * n / (n - X.shape[1])
    for i, term in enumerate(order):
        assert t.loc[term, "estimate"] == pytest.approx(beta[i], abs=1e-10)
        assert t.loc[term, "se"] == pytest.approx(np.sqrt(cov[i, i]), rel=1e-8)


def test_sampling_is_reproducible_by_seed():
    c = pd.DataFrame({"pair_id": [f"p{i:03d}" for i in range(200)]}).sample(frac=1, random_state=3)
    a = sample_pairs(c, 50, seed=1)
    b = sample_pairs(c.sample(frac=1, random_state=9), 50, seed=1)     # input order does not matter
    assert list(a["pair_id"]) == list(b["pair_id"]) and a["pair_id"].is_unique
    assert list(sample_pairs(c, 50, seed=2)["pair_id"]) != list(a["pair_id"])
    assert list(sample_pairs(c, 80, seed=1)["pair_id"])[:50] == list(a["pair_id"])   # larger n extends
    assert len(sample_pairs(c, 500, seed=1)) == 200


# -- the experiment on real data with real tiny RMs -----------------------------------------------

def test_experiment_stores_scores_featurizes_and_resumes(scored):
    st, models, res = scored
    n_cands = st.scalar("SELECT count(*) FROM pairs WHERE NOT identical")
    assert res.n_sampled == BASE_N and res.n_items == 2 * BASE_N and res.n_candidates == n_cands
    rw = st.df("SELECT * FROM rewrites")
    assert len(rw) == 2 * BASE_N and rw["rewrite_id"].is_unique and set(rw["experiment"]) == {res.experiment}
    params = [json.loads(p) for p in rw["params"]]
    assert all(p["perturbation"] in RULE_PERTURBATIONS for p in params)
    assert len({p["perturbation"] for p in params}) >= 5            # drawn per text
    assert list(rw["perturbation"]) == [p["perturbation"] for p in params]
    assert rw["similarity"].between(-1, 1.0000001).all() and rw["similarity"].median() > 0.8
    assert (rw["meaning_changed"] == (rw["similarity"] < 0.8)).all()
    # the context is kept; the new text is stored whole; every new text scored by both RMs and featurized
    pairs = st.df("SELECT * FROM pairs").set_index("pair_id")
    for r in rw.itertuples():
        assert r.new_context == pairs.loc[r.pair_id, "context"] and r.new_text.endswith(r.new_response)
        orig = pairs.loc[r.pair_id, f"{r.side}_response"]
        if r.perturbation == "polite_preamble":
            assert r.new_response == ("Thanks for your question! " + orig).strip()
    new_ids = set(rw["new_text_id"])
    sc = st.df("SELECT model_id, text_id FROM scores")
    assert len(sc[sc["text_id"].isin(new_ids)]) == 2 * len(new_ids)
    fe = st.df("SELECT DISTINCT text_id FROM features")
    assert new_ids <= set(fe["text_id"])
    # the same seed gives the same experiment: a rerun does nothing, a larger n extends it
    before = n_scores(st)
    again = run_experiment(st, "rules", n=BASE_N, seed=0)
    assert again.experiment == res.experiment and again.n_cached == 2 * BASE_N and again.n_done == 0
    assert n_scores(st) == before
    more = run_experiment(st, "rules", n=BASE_N + 2, seed=0)
    assert more.n_cached == 2 * BASE_N and more.n_done == 4
    other = run_experiment(st, "rules", n=4, seed=1, sides=("chosen",))
    assert other.experiment not in (res.experiment, experiment_id(make_rewriter("rules"), 1, SIDES))
    assert other.n_done == 4 and set(st.df("SELECT side FROM rewrites WHERE experiment = ?",
                                           [other.experiment])["side"]) == {"chosen"}
    # same seed, same rewrites (rules are seeded per pair and side, not by order)
    rules_again = run_experiment(st, "rules:typo_noise", n=3, seed=5)
    a = st.df("SELECT rewrite_id, new_response FROM rewrites WHERE experiment = ? ORDER BY 1", [rules_again.experiment])
    st.execute("DELETE FROM rewrites WHERE experiment = ?", [rules_again.experiment])
    run_experiment(st, "rules:typo_noise", n=3, seed=5)
    b = st.df("SELECT rewrite_id, new_response FROM rewrites WHERE experiment = ? ORDER BY 1", [rules_again.experiment])
    assert a.equals(b)
    with pytest.raises(RmtuiError):
        run_experiment(st, "rules", n=5, seed=0, sides=("left",))


def test_fit_robustness_writes_tables_and_summary(scored):
    st, models, res = scored
    f = fit_robustness(st, res.experiment, min_count=2)
    n_changed = st.scalar("SELECT count(*) FROM rewrites WHERE new_text_id <> original_text_id")
    n_meaning = st.scalar("SELECT count(*) FROM rewrites WHERE new_text_id <> original_text_id AND meaning_changed")
    # meaning-changed rewrites are left out of the fit and counted
    assert f.n == n_changed - n_meaning and f.n_meaning_changed == n_meaning
    assert f.n + f.n_unchanged + n_meaning == 2 * BASE_N
    assert f.options["tie_tol"] == 0.0 and f.options["min_events"] == 5
    assert any("meaning_changed" in m for m in f.messages) == bool(n_meaning)
    rob = st.df("SELECT * FROM robustness WHERE fit_id = ?", [f.fit_id])
    assert set(rob["outcome"]) <= {"became_misaligned", "became_aligned"} and len(rob) > 0
    assert "intercept" in set(rob["term"]) and set(rob["se_type"].dropna()) <= {"HC1", "cluster(pair)"}
    assert set(rob["variant"]) == {"at_risk", "all_rewrites"} and rob["status"].notna().all()
    est = rob[rob["status"] == "ok"]
    assert (est["ci_low"] <= est["estimate"]).all() and (est["estimate"] <= est["ci_high"]).all()
    # only discrete features become flip indicators (len_words is a count)
    assert not rob["term"].str.contains("len_words").any()
    assert rob["term"].str.contains("sentiment").any()
    sens = st.df("SELECT * FROM sensitivity WHERE fit_id = ?", [f.fit_id])
    assert set(sens["role"]) == {"pre", "post"}
    # sensitivity equals the mean change computed straight from the scores table
    post = st.scalar("SELECT model_id FROM models WHERE role = 'post'")
    chk = st.df("""SELECT r.perturbation, avg(sn.reward - so.reward) AS m, count(*) AS n FROM rewrites r
                   JOIN scores so ON so.text_id = r.original_text_id AND so.model_id = $post
                   JOIN scores sn ON sn.text_id = r.new_text_id AND sn.model_id = $post
                   WHERE r.new_text_id <> r.original_text_id AND NOT coalesce(r.meaning_changed, false)
                   GROUP BY 1""", {"post": post}).set_index("perturbation")
    mine = sens[(sens["side"] == "all") & (sens["role"] == "post")].set_index("perturbation")
    for pert, row in chk.iterrows():
        assert mine.loc[pert, "mean_change"] == pytest.approx(row["m"]) and mine.loc[pert, "n"] == row["n"]
    fits = st.df("SELECT * FROM fits WHERE kind = 'robustness'")
    assert len(fits) == 1 and fits["post_model_id"][0] == post
    # refitting the same rewrites replaces, not duplicates
    fit_robustness(st, res.experiment, min_count=2)
    assert st.scalar("SELECT count(*) FROM robustness WHERE fit_id = ?", [f.fit_id]) == len(rob)
    # the experiment's design is stored: seed, n, sides, frame
    design = st.df("SELECT * FROM rewrite_experiments WHERE experiment = ?", [res.experiment]).iloc[0]
    assert (design["seed"], design["n_requested"], design["sides"]) == (0, BASE_N, "chosen,rejected")
    assert design["n_sampled"] == BASE_N and "seeded permutation" in design["frame"]
    # the robustness fit is stale once the fit's tie tolerance differs
    from analysis.rewrite.experiment import robustness_stale

    assert robustness_stale(st) == []
    st.execute("INSERT INTO fits (fit_id, kind, created_at, options) VALUES ('fit-x', 'fit', now(), "
               "'{\"tie_tol\": 0.5}')")
    assert any("tie tolerance 0" in m and "0.5" in m for m in robustness_stale(st))
    st.execute("DELETE FROM fits WHERE fit_id = 'fit-x'")
    summ = robustness_summary(st)
    json.dumps(summ)
    assert summ["fit_id"] == f.fit_id and summ["n"] == f.n and "before - after" in summ["sign_convention"]
    assert {r["role"] for r in summ["flip_rates"]} == {"pre", "post"}


def test_rewrite_one_manual_scores_persists_and_discards(scored):
    st, models, _ = scored
    st.execute("DELETE FROM rewrites")
    pair = st.df("SELECT * FROM pairs WHERE NOT identical ORDER BY pair_id LIMIT 1").iloc[0]
    new = "I would rather not help with that, but here is some general safety advice instead."
    out = rewrite_one(st, pair["pair_id"], "rejected", "manual", text=new, models=models)
    assert out.new_response == new and out.original_response == pair["rejected_response"]
    sc = st.df("SELECT model_id, text_id, reward FROM scores")
    get = lambda m, t: float(sc[(sc.model_id == m) & (sc.text_id == t)]["reward"].iloc[0])  # noqa: E731
    for r in out.rewards.itertuples():
        assert r.old == pytest.approx(get(r.model_id, pair["rejected_text_id"]))
        assert r.new == pytest.approx(get(r.model_id, out.new_text_id))
        chosen = get(r.model_id, pair["chosen_text_id"])
        assert out.margin_old[r.role] == pytest.approx(chosen - r.old)
        assert out.margin_new[r.role] == pytest.approx(chosen - r.new)
        assert out.flips[r.role] == M.flip_label(chosen - r.old, chosen - r.new)
    assert 0 < out.similarity < 1 and out.kept
    assert st.scalar("SELECT count(*) FROM features WHERE text_id = ?", [out.new_text_id]) > 0   # kept: featurized
    row = st.df("SELECT * FROM rewrites WHERE rewrite_id = ?", [out.rewrite_id]).iloc[0]
    assert row["experiment"] == "interactive" and row["new_response"] == new and row["rewriter"] == "manual"
    # a rule rewrite of the chosen side, not kept
    out2 = rewrite_one(st, pair["pair_id"], "chosen", "rules", perturbation="apology", keep=False, models=models)
    assert out2.new_response.startswith("I'm sorry, but") and not out2.kept
    assert st.scalar("SELECT count(*) FROM features WHERE text_id = ?", [out2.new_text_id]) == 0
    assert st.scalar("SELECT count(*) FROM rewrites") == 1
    # kept later (the app's ctrl+s): stored and featurized then
    keep_rewrite(st, out2)
    assert out2.kept and st.scalar("SELECT count(*) FROM features WHERE text_id = ?", [out2.new_text_id]) > 0
    assert st.df("SELECT rewriter, kept FROM rewrites WHERE rewrite_id = ?", [out2.rewrite_id]).iloc[0].tolist() \
        == ["rules", True]
    # the same rewrite again, not kept: same id, reported as already kept, and nothing is written
    out3 = rewrite_one(st, pair["pair_id"], "chosen", "rules", perturbation="apology", keep=False, models=models)
    assert out3.rewrite_id == out2.rewrite_id and out3.kept
    assert discard_rewrite(st, out2.rewrite_id) is True
    assert st.scalar("SELECT count(*) FROM rewrites") == 1
    assert discard_rewrite(st, out.rewrite_id) is True
    assert st.scalar("SELECT count(*) FROM rewrites") == 0
    assert discard_rewrite(st, out.rewrite_id) is False
    with pytest.raises(RmtuiError):
        rewrite_one(st, "no-such-pair", "chosen", text="x", models=models)
    with pytest.raises(RmtuiError):
        rewrite_one(st, pair["pair_id"], "middle", text="x", models=models)


def test_llm_experiment_records_failures_and_stores_only_good_rewrites(scored):
    import threading
    from http.server import ThreadingHTTPServer

    from tests.analysis.rewrite.test_llm import _Handler

    st, models, _ = scored
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests, srv.calls = [], {}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = run_experiment(st, "llm", n=6, seed=3, sides=("chosen",),
                             endpoint=f"http://127.0.0.1:{srv.server_port}/v1", model="m-test", max_attempts=2)
    finally:
        srv.shutdown()
        srv.server_close()
    sample = sample_pairs(st.df("SELECT pair_id, chosen_response FROM pairs WHERE NOT identical"), 6, 3)
    bad = sample[sample["chosen_response"].str.strip().str.len() % 3 == 0]
    assert res.n_failed == len(bad) and res.n_done == 6 - len(bad)
    assert {f[0] for f in res.failures} == set(bad["pair_id"])
    assert all("empty" in f[2] for f in res.failures)
    rw = st.df("SELECT * FROM rewrites WHERE experiment = ?", [res.experiment])
    assert len(rw) == res.n_done and rw["new_response"].str.startswith("In other words, ").all()
    assert (rw["rewriter"] == "llm").all() and json.loads(rw["params"][0])["model"] == "m-test"
    assert len(srv.requests) == res.n_done + 2 * len(bad)       # bounded: 2 attempts per failure
    calls = st.df("SELECT * FROM llm_calls WHERE purpose = 'rewrite'")
    assert len(calls) == len(srv.requests) and (calls["status"] == "ok").all()


def test_fit_without_rewrites_is_a_clear_error(scored):
    st, *_ = scored
    st.execute("DELETE FROM rewrites")
    with pytest.raises(RmtuiError, match="no rewrites"):
        fit_robustness(st)
    assert robustness_summary(st) == {}


def test_cli_rewrite(scored, study_path):
    from typer.testing import CliRunner

    import rmtui.cli.rewrite  # noqa: F401  (registers the command)
    from rmtui.cli import app

    st, models, _ = scored
    st.close()          # the CLI opens the file itself (one writer)

    r = CliRunner().invoke(app, ["rewrite", "--study", str(study_path), "--rewriter", "rules", "--n", "3",
                                 "--seed", "0", "--perturbation", "more_positive", "--sides", "chosen"])
    assert r.exit_code == 0, r.output
    assert "3 new" in r.output and "more_positive" in r.output and "Robustness score" in r.output and "time per stage" in r.output
    r2 = CliRunner().invoke(app, ["rewrite", "--study", str(study_path), "--rewriter", "rules", "--n", "3",
                                  "--seed", "0", "--perturbation", "more_positive", "--sides", "chosen"])
    assert r2.exit_code == 0 and "0 new, 3 already stored" in r2.output
