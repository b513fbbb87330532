"""fit_study / summary on real DuckDB studies with planted rewards and features, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import rmtui.cli.fit  # noqa: F401  (registers fit and summary)
from analysis.datasets.readers import Pair
from analysis.errors import RmtuiError
from analysis.fit.study_fit import FitOptions, fit_study, summary
from analysis.metrics import REGIMES
from analysis.store import now, open_study
from analysis.store.pairs import add_pairs, start_ingest
from rmtui.cli.base import app

TRUE_POST = {"llm.harmless": 2.1, "llm.helpful": 1.1, "heuristic.length": 0.02}


def build_study(path, n_pairs=400, seed=0, *, features=True, post=True, n_identical=2, llm="llm"):
    """A study with planted rewards: pre = 1.0*harmless + 0.5*helpful + 0.02*length + pair effect + noise;
    post = pre + 1.1*harmless + 0.6*helpful + noise (so post: 2.1, 1.1, 0.02). Returns the truth."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n_pairs):
        ctx = f"\n\nHuman: question number {i}?"
        c = f"chosen answer {i} " + "word " * int(rng.integers(1, 40))
        r = c if i < n_identical else f"rejected reply {i} " + "text " * int(rng.integers(1, 40))
        pairs.append(Pair(subset="harmless-base" if i % 2 else "helpful-base", split="train", source="synthetic",
                          source_row=i + 1, dataset="synthetic", chosen_context=ctx, chosen_response=c,
                          rejected_context=ctx, rejected_response=r, chosen_text=ctx + "\n\nAssistant: " + c,
                          rejected_text=ctx + "\n\nAssistant: " + r))
    with open_study(path) as st:
        add_pairs(st, pairs, start_ingest(st, "synthetic", {}))
        texts = st.df("SELECT DISTINCT text_id, response FROM texts ORDER BY text_id")
        pmap = st.df("SELECT pair_id, chosen_text_id, rejected_text_id FROM pairs")
        n = len(texts)
        harmless = rng.integers(0, 2, n).astype(float)
        helpful = rng.integers(0, 2, n).astype(float)
        length = texts["response"].str.split().str.len().to_numpy(float)
        sentiment = rng.integers(-1, 2, n).astype(float)
        base = 1.0 * harmless + 0.5 * helpful + 0.02 * length
        pre = base + rng.normal(0, 0.5, n)
        post_r = pre + 1.1 * harmless + 0.6 * helpful + rng.normal(0, 0.3, n)
        tid = texts["text_id"].to_numpy()
        models = [("old-pre", "old pre", "pre", "2020-01-01"), ("rm-pre", "pre RM", "pre", "2021-01-01"),
                  ("rm-other", "other RM", "other", "2021-06-01")]
        if post:
            models.append(("rm-post", "post RM", "post", "2022-01-01"))
        rewards = {"old-pre": rng.normal(size=n), "rm-pre": pre, "rm-other": -pre, "rm-post": post_r}
        with st.transaction() as cur:
            for mid, name, role, ts in models:
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, ?)",
                            [mid, name, role, ts])
                cur.register("_s", pd.DataFrame({"model_id": mid, "text_id": tid, "reward": rewards[mid]}))
                cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
                cur.unregister("_s")
            if features:
                defs = [(llm, "harmless", "binary", "target", False), (llm, "helpful", "binary", "target", False),
                        ("heuristic", "length", "count", "spoiler", True),
                        ("heuristic", "sentiment", "ordinal", "spoiler", True)]
                for d in defs:
                    cur.execute("INSERT INTO feature_defs VALUES (?, ?, ?, ?, ?, '')", list(d))
                vals = {f"{llm}.harmless": harmless, f"{llm}.helpful": helpful, "heuristic.length": length,
                        "heuristic.sentiment": sentiment}
                for key, v in vals.items():
                    fz, _, name = key.rpartition(".")
                    cur.register("_f", pd.DataFrame({"text_id": tid, "featurizer": fz, "name": name, "value": v}))
                    cur.execute("INSERT INTO features SELECT * FROM _f")
                    cur.unregister("_f")
    lookup = dict(zip(tid, range(n)))
    ic = pmap["chosen_text_id"].map(lookup).to_numpy()
    ir = pmap["rejected_text_id"].map(lookup).to_numpy()
    truth = {"pair_id": pmap["pair_id"].to_numpy(), "pre_c": pre[ic], "pre_r": pre[ir], "post_c": post_r[ic],
             "post_r": post_r[ir], "harmless_c": harmless[ic], "harmless_r": harmless[ir],
             "helpful_c": helpful[ic], "helpful_r": helpful[ir]}
    return truth


def expected_gamma_counts(t):
    """Pairs per gamma by hand: target score 2*harmless + helpful, chosen against rejected."""
    sc = 2 * t["harmless_c"] + t["helpful_c"]
    sr = 2 * t["harmless_r"] + t["helpful_r"]
    return {"c": int((sc > sr).sum()), "i": int((sc == sr).sum()), "r": int((sc < sr).sum())}


def gamma_counts(s):
    """Pairs per gamma in a summary (summed over regimes)."""
    out = {}
    for r in s["regimes_by_gamma"]:
        out[r["gamma"]] = out.get(r["gamma"], 0) + r["n"]
    return out


def expected_regimes(t, post=True):
    ident = t["pre_c"] == t["pre_r"]
    dp = t["pre_c"] > t["pre_r"]
    dq = t["post_c"] > t["post_r"]
    out = {r: 0 for r in REGIMES}
    for i in range(len(dp)):
        if not post:
            out["unscored"] += 1
        elif ident[i] or t["post_c"][i] == t["post_r"][i]:
            out["tie"] += 1
        else:
            out[{(1, 1): "stayed_aligned", (0, 1): "got_aligned", (0, 0): "resists_alignment",
                 (1, 0): "reversed"}[(int(dp[i]), int(dq[i]))]] += 1
    return out


runner = CliRunner()


def invoke(*args):
    res = runner.invoke(app, list(args), catch_exceptions=True)
    return res


def test_fit_and_summary_json_planted(study_path):
    truth = build_study(study_path, seed=1)   # a 95% interval misses 1 time in 20: seed fixed
    res = invoke("fit", "--study", str(study_path))
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "fit fit-" in res.output and "400 pairs" in res.output
    out = invoke("summary", "--study", str(study_path), "--json")
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    # models: the latest pre (not old-pre) and the post
    assert s["fit"]["pre_model_id"] == "rm-pre" and s["fit"]["post_model_id"] == "rm-post"
    # regimes: exact counts
    got = {r["regime"]: r["n"] for r in s["regimes"]}
    assert got == expected_regimes(truth)
    assert got["tie"] == 2 and s["ties"]["identical_pairs"] == 2
    # agreement per RM: all four models, overall and by subset / split / heldout
    allrows = {r["model_id"]: r for r in s["agreement"] if r["group"] == "all"}
    assert set(allrows) == {"old-pre", "rm-pre", "rm-other", "rm-post"}
    dp = truth["pre_c"] > truth["pre_r"]
    assert allrows["rm-pre"]["agree"] == int(dp.sum()) and allrows["rm-pre"]["tie"] == 2
    assert allrows["rm-other"]["agree"] == int((truth["pre_c"] < truth["pre_r"]).sum())
    assert {r["value"] for r in s["agreement"] if r["group"] == "subset"} == {"harmless-base", "helpful-base"}
    assert {r["value"] for r in s["agreement"] if r["group"] == "heldout"} == {"unknown"}
    # imprint: planted post coefficients recovered, clustered SEs
    imp = {(r["target"], r["feature"]): r for r in s["imprint"]}
    for f, b in TRUE_POST.items():
        r = imp[("post", f)]
        assert r["ci_low"] <= b <= r["ci_high"] and abs(r["estimate"] - b) < 0.15, (f, r)
        assert r["se_type"] == "cluster" and r["n"] == 800
    assert imp[("shift", "llm.harmless")]["ci_low"] <= 1.1 <= imp[("shift", "llm.harmless")]["ci_high"]
    assert ("pre", "heuristic.sentiment") in imp
    # gamma by hand for the pairs
    assert gamma_counts(s) == expected_gamma_counts(truth)
    assert {m["gamma"] for m in s["misalignment_by_gamma"]} == {"c", "i", "r"}
    # theta, drivers, confusing
    assert {r["regime"] for r in s["theta_by_regime"]} <= set(REGIMES)
    assert set(s["coefficients"]) == {"theta", "misalignment_lpm", "misalignment_logit"}
    assert any(r["term"] == "chosen:llm.harmless" for r in s["coefficients"]["misalignment_lpm"])
    assert s["confusing"]["identical"] == 2 and s["confusing"]["near_identical"] >= 2
    same = ((truth["harmless_c"] == truth["harmless_r"]) & (truth["helpful_c"] == truth["helpful_r"])).sum()
    assert s["confusing"]["same_target_labels"] == int(same)
    # one convention: stored agreement over decided pairs; misalignment its complement, ties beside it
    post_all = {(r["model_id"], r["slice"]): r for r in s["agreement_stats"]}[("rm-post", "all")]
    assert post_all["agreement"] == pytest.approx(1 - s["misalignment"]["misalignment"])
    assert post_all["decided"] == s["misalignment"]["decided"] and post_all["tie"] == s["ties"]["post"]
    assert allrows["rm-post"]["agreement"] == pytest.approx(post_all["agreement"])
    assert post_all["agreement_low"] < post_all["agreement"] < post_all["agreement_high"]
    assert {r["slice"] for r in s["agreement_stats"]} == {"all", "subset", "split", "heldout", "gamma"}
    # the paired test counts the regimes' reversed / got_aligned
    pt = {(r["slice"], r["value"]): r for r in s["paired_tests"]}[("all", "all")]
    assert (pt["reversed"], pt["got_aligned"]) == (got["reversed"], got["got_aligned"])
    assert {r["baseline"] for r in s["baselines"]} == {"longer_wins", "shorter_wins", "length_logit"}


def test_pair_metrics_table_and_rich_summary(study_path):
    truth = build_study(study_path, n_pairs=200, seed=1)
    with open_study(study_path) as st:
        res = fit_study(st, FitOptions())
        pm = st.df("SELECT * FROM pair_metrics ORDER BY pair_id")
    assert len(pm) == 200 and set(pm["regime"]) <= set(REGIMES)
    assert (pm["fit_id"] == res.fit_id).all()
    t = pd.DataFrame(truth).set_index("pair_id").loc[pm["pair_id"]]
    assert np.allclose(pm["margin_pre"], t["pre_c"] - t["pre_r"])
    ties = pm[pm["tie_pre"]]
    assert len(ties) == 2 and ties["agree_pre"].isna().all()
    exp_theta = np.degrees(np.arctan2(t["pre_c"] * t["post_r"] - t["pre_r"] * t["post_c"],
                                      t["pre_c"] * t["post_c"] + t["pre_r"] * t["post_r"]))
    assert np.allclose(pm["theta"], exp_theta)
    out = invoke("summary", "--study", str(study_path), "--all")
    assert out.exit_code == 0, out.output
    text = out.output
    for title in ("Agreement per RM", "Regimes", "Regimes by LM-labeler preference gamma", "Regimes by subset",
                  "Feature imprint", "Reward shift theta", "Misalignment drivers", "Confusing entries"):
        assert title in text, title
    assert "***" in text and "cluster-robust by pair" in text


def test_fit_options_iid_pair_fe_features(study_path):
    build_study(study_path, n_pairs=300, seed=2)
    res = invoke("fit", "--study", str(study_path), "--se", "iid", "--pair-fe", "--standardize",
                 "--features", "llm.harmless,helpful,length")
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "no intercept" in res.output
    s = json.loads(invoke("summary", "--study", str(study_path), "--json").output)
    assert s["pair_fe"] is True and s["se_type"] == "iid"
    feats = {r["feature"] for r in s["imprint"]}
    assert feats == {"llm.harmless", "llm.helpful", "heuristic.length"}
    assert all(r["n"] == 300 for r in s["imprint"])          # one difference per pair
    post = {r["feature"]: r for r in s["imprint"] if r["target"] == "post"}
    assert post["llm.harmless"]["ci_low"] <= 2.1 <= post["llm.harmless"]["ci_high"]


def test_featurizers_option_and_unknown_names(study_path):
    build_study(study_path, n_pairs=100, seed=3)
    with open_study(study_path) as st:
        r = fit_study(st, FitOptions(featurizers=["heuristic"]))
        assert r.features == ["heuristic.length", "heuristic.sentiment"]
        assert r.gamma_features == ["llm.harmless", "llm.helpful"]     # gamma still from the targets
        with pytest.raises(RmtuiError, match="no feature 'nope'"):
            fit_study(st, FitOptions(features=["nope"]))
        with pytest.raises(RmtuiError, match="no values for bogus"):
            fit_study(st, FitOptions(featurizers=["bogus"]))
        with pytest.raises(RmtuiError, match="no model 'missing' for --pre"):
            fit_study(st, FitOptions(pre="missing"))
        # --pre/--post override by id or name
        r2 = fit_study(st, FitOptions(pre="old pre", post="rm-pre", drivers=False))
        assert r2.pre_model_id == "old-pre" and r2.post_model_id == "rm-pre"
        g = fit_study(st, FitOptions(gamma_features=["helpful", "harmless"]))
        assert g.gamma_features == ["llm.helpful", "llm.harmless"]
        wide = fit_study(st, FitOptions(tie_tol=1e9, drivers=False))          # every pair a tie
        assert (wide.pair_metrics["regime"] == "tie").all() and wide.pair_metrics["agree_post"].isna().all()
        s = summary(st)
        assert s["tie_tol"] == 1e9 and all(r["tie"] == r["n"] for r in s["agreement"])


def test_summary_without_features_and_without_fit(study_path):
    truth = build_study(study_path, n_pairs=150, seed=4, features=False)
    with open_study(study_path, read_only=False) as st:
        s = summary(st)                        # no fit yet: regimes computed now, nothing written
        assert st.scalar("SELECT count(*) FROM fits") == 0
    assert {r["regime"]: r["n"] for r in s["regimes"]} == expected_regimes(truth)
    assert s["imprint"] == [] and s["regimes_by_gamma"] == []
    assert any("fit: none yet" in m for m in s["missing"])
    json.dumps(s)
    res = invoke("fit", "--study", str(study_path))
    assert res.exit_code == 0 and "no features" in res.output
    out = invoke("summary", "--study", str(study_path))
    assert out.exit_code == 0 and "Regimes" in out.output and "Feature imprint" not in out.output


def test_summary_empty_study_and_pre_only(study_path, tmp_path):
    with open_study(study_path) as st:
        s = summary(st)
    assert s["n_pairs"] == 0 and s["agreement"] == [] and s["regimes"] == []
    json.dumps(s)
    p2 = tmp_path / "pre_only.duckdb"
    build_study(p2, n_pairs=80, seed=5, post=False)
    with open_study(p2) as st:
        r = fit_study(st)
        assert r.post_model_id is None and set(r.imprint["target"]) == {"pre"}
        s = summary(st)
    assert {x["regime"]: x["n"] for x in s["regimes"]}["unscored"] == 80
    assert s["theta_by_regime"] == [] and "misalignment_lpm" not in s["coefficients"]


def test_summary_prints_robustness_tables(study_path, monkeypatch):
    from rmtui.cli.base import console

    monkeypatch.setattr(console, "width", 160)
    build_study(study_path, n_pairs=60, seed=6)
    with open_study(study_path) as st:
        fit_study(st, FitOptions(drivers=False))
        with st.transaction() as cur:
            cur.execute("INSERT INTO fits (fit_id, kind, created_at) VALUES ('rob-1', 'robustness', ?)", [now()])
            cur.execute("INSERT INTO robustness (fit_id, outcome, term, estimate, se, ci_low, ci_high, p, n, se_type) "
                        "VALUES ('rob-1', 'became_misaligned', 'chosen:sentiment_down', "
                        "0.117, 0.035, 0.05, 0.19, 0.001, 1608, 'hc1')")
            # the robustness branch's table (CREATE IF NOT EXISTS: present once merged)
            cur.execute("CREATE TABLE IF NOT EXISTS sensitivity (fit_id VARCHAR, perturbation VARCHAR, side VARCHAR, "
                        "model_id VARCHAR, role VARCHAR, mean_change DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n INTEGER)")
            cur.execute("INSERT INTO sensitivity (fit_id, perturbation, side, model_id, role, mean_change, ci_low, "
                        "ci_high, n) VALUES ('rob-1', 'add_apology', 'chosen', 'rm-post', 'post', -0.125, -0.2, -0.05, 40)")
    s = json.loads(invoke("summary", "--study", str(study_path), "--json").output)
    assert s["robustness"]["robustness"][0]["term"] == "chosen:sentiment_down"
    assert s["robustness"]["sensitivity"][0]["mean_change"] == -0.125
    out = invoke("summary", "--study", str(study_path), "--all").output
    assert "Robustness, " in out and "chosen:sentiment_down" in out and "add_apology" in out
    assert "Robustness: reward change per rewrite" in out and "[-0.200, -0.050]" in out and "[+0.050, +0.190]" in out


def test_fit_bad_se_option(study_path):
    build_study(study_path, n_pairs=20, seed=7)
    res = invoke("fit", "--study", str(study_path), "--se", "bogus")
    assert res.exit_code != 0


def test_a_featurizer_name_with_dots_keeps_its_features(tmp_path):
    """An LLM labeler named after its model (llm:qwen2.5) had every feature dropped from the fit: the
    key 'llm:qwen2.5.harmless' was split at its first dot. The planted effects come back as with 'llm'."""
    p = tmp_path / "dots.duckdb"
    truth = build_study(p, seed=1, llm="llm:qwen2.5")
    assert invoke("fit", "--study", str(p)).exit_code == 0
    s = json.loads(invoke("summary", "--study", str(p), "--json").output)
    imp = {(r["target"], r["feature"]): r for r in s["imprint"]}
    for f, b in TRUE_POST.items():
        r = imp[("post", f.replace("llm.", "llm:qwen2.5."))]
        assert r["ci_low"] <= b <= r["ci_high"] and r["n"] == 800, (f, r)
    assert gamma_counts(s) == expected_gamma_counts(truth)


def test_summary_says_when_the_fit_is_stale(tmp_path):
    """New pairs, a newer pre model or a later scoring run after the fit: summary says so (it mixed the
    old fit's regimes with the current counts in silence)."""
    p = tmp_path / "stale.duckdb"
    build_study(p, n_pairs=60, seed=2)
    assert invoke("fit", "--study", str(p)).exit_code == 0
    s = json.loads(invoke("summary", "--study", str(p), "--json").output)
    assert s["stale"] == []
    with open_study(p) as st:
        st.execute("INSERT INTO score_runs (run_id, model_id, started_at, finished_at, n_scored) "
                   "VALUES ('r-late', 'rm-pre', now()::TIMESTAMP, now()::TIMESTAMP + INTERVAL 1 HOUR, 5)")
        st.execute("INSERT INTO models (model_id, name, role, created_at) VALUES ('rm-pre-2', 'newer pre', 'pre', "
                   "now()::TIMESTAMP + INTERVAL 2 HOUR)")
    s = json.loads(invoke("summary", "--study", str(p), "--json").output)
    assert any("scoring run(s) finished after fit" in m for m in s["stale"])
    assert any("the latest are rm-pre-2" in m for m in s["stale"])
    out = invoke("summary", "--study", str(p))
    assert "stale: " in out.output


def test_gamma_from_proxy_labels_is_marked_and_measured(tmp_path):
    """Targets from the offline proxy featurizer feed gamma like an LLM's, marked as proxies everywhere,
    with their agreement with the human label (c / (c + r)) per subset counted by hand."""
    p = tmp_path / "proxy.duckdb"
    truth = build_study(p, seed=2, llm="proxy")
    with open_study(p) as st:
        fit_study(st, FitOptions(drivers=False))
    s = json.loads(invoke("summary", "--study", str(p), "--json").output)
    assert s["gamma_source"]["proxy"] is True and "PROXY" in s["gamma_source"]["caveat"]
    assert s["fit"]["options"]["gamma_features_resolved"] == ["proxy.harmless", "proxy.helpful"]
    la = {(r["slice"], r["value"]): r for r in s["labeler_agreement"]}
    want = expected_gamma_counts(truth)
    allr = la[("all", "all")]
    assert (allr["c"], allr["i"], allr["r"]) == (want["c"], want["i"], want["r"]) and allr["proxy"] is True
    assert allr["agreement"] == pytest.approx(want["c"] / (want["c"] + want["r"]))
    assert {v for (sl, v) in la if sl == "subset"} == {"harmless-base", "helpful-base"}
    out = invoke("summary", "--study", str(p)).output
    assert "PROXY" in out


def test_suspect_score_stored_sorted_and_exported(study_path, tmp_path):
    build_study(study_path, n_pairs=120, seed=3)
    with open_study(study_path) as st:
        fit_study(st, FitOptions(drivers=False))
        pm = st.df("SELECT pair_id, margin_pre, margin_post, gamma, suspect_score FROM pair_metrics")
        from analysis.metrics.suspect import suspect_scores
        from analysis.store import browse

        assert np.allclose(pm["suspect_score"], suspect_scores(pm))
        ids = browse.sorted_ids(st, browse.EntryFilter(regime=None), ("suspect", True))
    assert ids[0] == pm.sort_values("suspect_score", ascending=False)["pair_id"].iloc[0]
    out = tmp_path / "suspects.jsonl"
    res = invoke("suspects", "--study", str(study_path), "--top", "5", "-o", str(out))
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["pair_id"] == ids[0]


def test_summary_fits_a_screen_at_80_columns_and_names_models(study_path, monkeypatch):
    """By default the summary is the findings first and the headline tables: under 60 lines at 80
    columns (it was hundreds), models by name and never by their hex ids; --all prints every table,
    where the one split (train) and the unknown held-out marks do not repeat the 'all' row."""
    import re

    from rmtui.cli.base import console

    build_study(study_path, n_pairs=400, seed=1)
    with open_study(study_path) as st:  # hex model ids, as scoring makes them
        for t in ("models", "scores"):
            st.execute(f"UPDATE {t} SET model_id = substr(md5(model_id), 1, 16)")
        fit_study(st, FitOptions())
        hexes = [r[0] for r in st.execute("SELECT model_id FROM models").fetchall()]
    monkeypatch.setattr(console, "width", 80)
    out = invoke("summary", "--study", str(study_path))
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert len(lines) < 60, out.output
    assert max(len(x) for x in lines) <= 80
    text = out.output
    first = [x.strip() for x in lines].index("Findings")  # right under the study line, before any table
    assert first <= 4 and first < text.index("Agreement per RM") and "• Agreement" in text
    assert "pre-D pre RM" in " ".join(text.split()) and "post RM (post)" in text
    assert not any(h in text for h in hexes) and not re.search(r"\b[0-9a-f]{12,}\b", text)
    assert "rmtui summary --all" in text
    full = invoke("summary", "--study", str(study_path), "--all")
    assert full.exit_code == 0
    assert len(full.output.splitlines()) > len(lines)
    assert not any(h in full.output for h in hexes)
    assert "split=train" not in full.output and "heldout=unknown" not in full.output
    assert "subset=harmless-base" in full.output
    assert json.loads(invoke("summary", "--study", str(study_path), "--json").output)["models"][0]["model_id"] in hexes
