"""Human ties are data: stored, counted, and kept out of agreement, regimes and the imprint; several
annotators: unanimous vs split pairs the RM gets wrong told apart. Planted rewards, real DuckDB studies."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

import rmtui.cli.fit  # noqa: F401
import rmtui.cli.ingest  # noqa: F401
from analysis.datasets.readers import ReadOptions
from analysis.fit.study_fit import fit_study, summary
from analysis.datasets.ingest import ingest
from analysis.datasets.shapes import parse_map
from analysis.store import open_study
from rmtui.cli.base import app

# row: (votes of three annotators, pre reward of A, of B, post reward of A, of B)
ROWS = [
    ([1, 1, 1], 2.0, 1.0, 2.0, 1.0),   # unanimous A; pre agrees, post agrees
    ([1, 1, 1], 2.0, 1.0, 0.0, 1.0),   # unanimous A; pre agrees, post disagrees (a clear miss)
    ([2, 2, 1], 0.0, 1.0, 1.0, 0.0),   # split, B wins; pre agrees, post disagrees (the humans split too)
    ([2, 2, 2], 1.0, 0.0, 0.0, 1.0),   # unanimous B; pre disagrees, post agrees
    ([1, 2, 0], 5.0, 0.0, 5.0, 0.0),   # no majority: a tie; rewards "agree" with A (must not count)
    ([0, 0, 1], 5.0, 0.0, 5.0, 0.0),   # majority tie
]


def build(tmp_path):
    f = tmp_path / "judgments-test.jsonl"
    f.write_text("\n".join(json.dumps({"instruction": f"task {i}", "input": "", "response1": f"A{i}",
                                       "response2": f"B{i}", "annotator1": v[0], "annotator2": v[1],
                                       "annotator3": v[2]}) for i, (v, *_r) in enumerate(ROWS)) + "\n")
    path = tmp_path / "s.duckdb"
    mapping, shape = parse_map(["prompt=instruction+input,a=response1,b=response2,label=annotator1,annotator2,"
                                "annotator3"], label="a=1,b=2,tie=0")
    with open_study(path) as st:
        res = ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        assert (res.n_read, res.n_ties, res.n_split_votes) == (6, 2, 1)  # a tie is not a split vote
        texts = st.df("SELECT response, text_id FROM texts")
        tid = dict(zip(texts["response"], texts["text_id"]))
        with st.transaction() as cur:
            for mid, role, col in (("pre", "pre", 1), ("post", "post", 3)):
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, now())",
                            [mid, mid, role])
                rows = [(mid, tid[f"A{i}"], r[col]) for i, r in enumerate(ROWS)]
                rows += [(mid, tid[f"B{i}"], r[col + 1]) for i, r in enumerate(ROWS)]
                cur.register("_s", pd.DataFrame(rows, columns=["model_id", "text_id", "reward"]))
                cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
                cur.unregister("_s")
    return path


def test_fit_leaves_human_ties_out(tmp_path):
    path = build(tmp_path)
    with open_study(path) as st:
        r = fit_study(st)
        assert r.n_pairs == 4
        assert any("human ties: 2 pairs" in m for m in r.messages)
        pm = st.df("SELECT p.source_row, m.agree_pre, m.agree_post, m.regime FROM pair_metrics m "
                   "JOIN pairs p USING (pair_id) ORDER BY p.source_row")
        assert pm["source_row"].tolist() == [1, 2, 3, 4]
        assert pm["agree_pre"].tolist() == [1, 1, 1, 0]
        assert pm["agree_post"].tolist() == [1, 0, 0, 1]
        s = summary(st)
    overall = {x["role"]: x for x in s["agreement"] if x["group"] == "all"}
    assert overall["pre"]["n"] == 4 and overall["pre"]["agree"] == 3   # with the ties it would be 5 of 6
    assert overall["post"]["n"] == 4 and overall["post"]["agree"] == 2
    assert sum(x["n"] for x in s["regimes"]) == 4
    assert s["stale"] == []  # the two ties are not "pairs the fit does not cover"
    h = s["human"]
    assert (h["ties"], h["with_votes"], h["unanimous"], h["split"]) == (2, 6, 3, 1)
    by = {x["consensus"]: x for x in h["by_consensus"]}
    assert (by["unanimous"]["n"], by["unanimous"]["decided_post"], by["unanimous"]["disagree_post"]) == (3, 3, 1)
    assert (by["split"]["n"], by["split"]["disagree_post"]) == (1, 1)
    assert by["tie"]["decided_post"] == 0  # ties never reach the fit


def test_summary_cli_shows_tie_count_and_consensus(tmp_path):
    path = build(tmp_path)
    with open_study(path) as st:
        fit_study(st)
    out = CliRunner().invoke(app, ["summary", "--study", str(path)])
    assert out.exit_code == 0, out.output
    assert "human ties: 2 pairs" in out.output
    assert "3 unanimous, 1 split" in out.output
    assert "unanimous" in out.output and "split" in out.output


def test_ingest_cli_counts_ties_and_split_votes(tmp_path):
    f = tmp_path / "prefs-test.jsonl"
    f.write_text("\n".join(json.dumps({"q": f"q{i}", "x": f"X{i}", "y": f"Y{i}", "w": w})
                           for i, w in enumerate(["model_a", "tie", "model_b", "tie (bothbad)"])) + "\n")
    out = CliRunner().invoke(app, ["ingest", str(f), "--study", str(tmp_path / "s.duckdb"),
                                   "--map", "prompt=q,a=x,b=y,label=w"])
    assert out.exit_code == 0, out.output
    assert "2 human ties" in out.output and "human ties" in out.output
    amb = tmp_path / "pm-test.jsonl"
    amb.write_text("\n".join(json.dumps({"q": "q", "x": f"X{i}", "y": "Y", "pref": v}) for i, v in enumerate([1, -1])))
    out = CliRunner().invoke(app, ["ingest", str(amb), "--study", str(tmp_path / "s2.duckdb"),
                                   "--map", "prompt=q,a=x,b=y,label=pref"])
    assert out.exit_code == 1  # the CLI's main() prints the error's title and message on one line
    assert getattr(out.exception, "title", "") == "Ambiguous label"
    assert "label column 'pref' holds -1 (1 record), 1 (1)" in str(out.exception)
    assert "e.g." not in str(out.exception)  # no guessed mapping offered as advice (issue 24 item 2)
    with open_study(tmp_path / "s2.duckdb") as st:
        assert st.scalar("SELECT count(*) FROM pairs") == 0  # the row labelled 1 was not read as "A won"


def test_dataset_attributes_reach_gamma_and_the_imprint(tmp_path):
    """PKU-SafeRLHF-style rows: is_response_N_safe imported as the target pku_saferlhf.harmless; planted
    rewards (pre = 2 * safe + noise, post = 3 * safe + noise) come back in the imprint, and gamma is the
    hand-computed comparison of the two sides' safety."""
    import numpy as np

    from analysis.fit.study_fit import FitOptions

    rng = np.random.default_rng(3)
    rows = []
    for i in range(120):
        s0, s1 = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        rows.append({"prompt": f"prompt {i}", "response_0": f"first answer {i}", "response_1": f"second answer {i}",
                     "is_response_0_safe": s0, "is_response_1_safe": s1, "response_0_severity_level": 0 if s0 else 2,
                     "response_1_severity_level": 0 if s1 else 1, "better_response_id": int(rng.integers(0, 2)),
                     "safer_response_id": 0 if s0 and not s1 else 1})
    f = tmp_path / "pku-train.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tmp_path / "s.duckdb"
    out = CliRunner().invoke(app, ["ingest", str(f), "--preset", "pku-saferlhf", "--study", str(path)])
    assert out.exit_code == 0, (out.output, out.exception)
    with open_study(path) as st:
        tx = st.df("SELECT DISTINCT t.text_id, f.value AS safe FROM texts t JOIN features f USING (text_id) "
                   "WHERE f.featurizer = 'pku_saferlhf' AND f.name = 'harmless'")
        assert len(tx) == 240
        noise = np.random.default_rng(4)
        with st.transaction() as cur:
            for mid, role, coef in (("pre", "pre", 2.0), ("post", "post", 3.0)):
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, now())",
                            [mid, mid, role])
                df = pd.DataFrame({"model_id": mid, "text_id": tx["text_id"],
                                   "reward": coef * tx["safe"] + noise.normal(0, 0.1, len(tx))})
                cur.register("_s", df)
                cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
                cur.unregister("_s")
        r = fit_study(st, FitOptions(features=["pku_saferlhf.harmless"], gamma_features=["pku_saferlhf.harmless"]))
        imp = r.imprint.set_index(["target", "feature"])["estimate"]
        assert abs(imp[("pre", "pku_saferlhf.harmless")] - 2.0) < 0.1
        assert abs(imp[("post", "pku_saferlhf.harmless")] - 3.0) < 0.1
        pm = st.df("SELECT p.subset, p.source_row, m.gamma FROM pair_metrics m JOIN pairs p USING (pair_id)")
    safe = {i + 1: (r["is_response_0_safe"], r["is_response_1_safe"]) for i, r in enumerate(rows)}
    for rec in pm.itertuples():
        s0, s1 = safe[rec.source_row]
        better = rows[rec.source_row - 1]["better_response_id" if rec.subset.endswith(":better") else "safer_response_id"]
        sc, sr = (s0, s1) if better == 0 else (s1, s0)
        assert rec.gamma == ("c" if sc > sr else "r" if sc < sr else "i")
    safer = pm[pm["subset"] == "pku:safer"]
    assert len(safer) == 120 and (safer["gamma"] != "r").all()  # the safer side is never the less safe one
    assert set(pm["subset"]) == {"pku:better", "pku:safer"}


def test_annotator_agreement_is_a_drivers_covariate(tmp_path):
    """Planted: the post-D RM gets 60 % of split pairs (2 of 3 votes) wrong and 10 % of unanimous ones;
    the drivers LPM's coefficient on annotator_agreement is the difference per unit of agreement,
    (0.10 - 0.60) / (1 - 2/3) = -1.5 (hand-computed; sampling noise of about 0.25 at this size)."""
    import numpy as np

    from analysis.fit.study_fit import FitOptions

    rng = np.random.default_rng(5)
    n = 400
    rows, wrong = [], []
    for i in range(n):
        split = i % 2 == 1
        votes = [1, 1, 2] if split else [1, 1, 1]
        rows.append({"q": f"q{i}", "x": f"first {i}", "y": f"second {i}", "v1": votes[0], "v2": votes[1],
                     "v3": votes[2], "sx": int(rng.integers(0, 2)), "sy": int(rng.integers(0, 2))})
        wrong.append(rng.random() < (0.6 if split else 0.1))
    f = tmp_path / "votes-train.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tmp_path / "s.duckdb"
    mapping, shape = parse_map(["prompt=q,a=x,b=y,label=v1,v2,v3,attr.safe.a=sx,attr.safe.b=sy"])
    with open_study(path) as st:
        ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        p = st.df("SELECT source_row, chosen_text_id, rejected_text_id FROM pairs ORDER BY source_row")
        rec = []
        for r in p.itertuples():
            w = wrong[r.source_row - 1]
            rec += [("pre", r.chosen_text_id, 1.0), ("pre", r.rejected_text_id, 0.0),
                    ("post", r.chosen_text_id, 0.0 if w else 1.0), ("post", r.rejected_text_id, 1.0 if w else 0.0)]
        with st.transaction() as cur:
            for mid in ("pre", "post"):
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, now())",
                            [mid, mid, mid])
            cur.register("_s", pd.DataFrame(rec, columns=["model_id", "text_id", "reward"]))
            cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
            cur.unregister("_s")
        r = fit_study(st, FitOptions(features=["votes.safe"]))
    assert any("annotator_agreement" in m for m in r.messages)
    c = r.coefficients
    row = c[(c["analysis"] == "misalignment_lpm") & (c["term"] == "annotator_agreement")].iloc[0]
    w = np.array(wrong)
    expected = (w[0::2].mean() - w[1::2].mean()) / (1 - 2 / 3)  # the sample's own difference
    assert abs(row["estimate"] - expected) < 0.15
    assert abs(row["estimate"] - (-1.5)) < 0.5 and row["ci_high"] < 0


def test_export_carries_the_human_labels(tmp_path):
    from analysis.report.export import export_pairs
    from analysis.store.browse import EntryFilter

    path = build(tmp_path)
    with open_study(path) as st:
        fit_study(st)
        out = tmp_path / "all.jsonl"
        export_pairs(st, EntryFilter(regime=None), None, out)
    recs = sorted((json.loads(x) for x in out.read_text().splitlines()), key=lambda r: r["chosen"])
    assert len(recs) == 6
    ties = [r for r in recs if r["human_tie"]]
    assert len(ties) == 2 and all(r["preference"] == "tie" and r["regime"] is None for r in ties)
    r = next(r for r in recs if r["chosen"] == "B2")
    assert (r["preference"], r["votes_a"], r["votes_b"], r["votes_tie"]) == ("b", 1, 2, 0)
    assert abs(r["annotator_agreement"] - 2 / 3) < 1e-9
