"""Issue 24, the statistics side: numbers a researcher can quote. Planted effects and hand-computed answers
on real DuckDB studies; the CLI as a user runs it; the app through App.run_test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.datasets.ingest import ingest
from analysis.datasets.readers import ReadOptions
from analysis.datasets.shapes import parse_map
from analysis.store import open_study
from tests.helpers.cli import run_cli

# -- planted ties: a pairwise set in its published shape ("response 1"/"response 2", 0 = first,
# 1 = second, 2 = tie), a quarter of the pairs human-tied ------------------------------------------

N_PAIRS = 40


def _planted_rows():
    """Per pair i: (label, pre margin A-B, post margin A-B). i % 4 == 3: a human tie (10 pairs) whose rewards
    side with A (folding ties in as 'A won' would raise agreement). Of the 30 decided pairs: pre agrees on
    18, disagrees on 9, ties 3 -> 18 / 27; post agrees on 21, disagrees 6, ties 3 -> 21 / 27."""
    rows = []
    k = 0
    for i in range(N_PAIRS):
        if i % 4 == 3:
            rows.append((2, 1.0, 1.0))
            continue
        label = k % 2  # 0: response 1 preferred, 1: response 2
        sign = 1.0 if label == 0 else -1.0  # a positive A-B margin agrees when A was preferred
        pre = sign * (1.0 if k < 18 else (-1.0 if k < 27 else 0.0))
        post = sign * (1.0 if k < 21 else (-1.0 if k < 27 else 0.0))
        rows.append((label, pre, post))
        k += 1
    return rows


def build_planted_ties(tmp_path):
    f = tmp_path / "pairwise-ties.jsonl"
    rows = _planted_rows()
    f.write_text("\n".join(json.dumps({
        "prompt": f"Question {i}: what is {i} plus {i}?", "response 1": f"It is {2 * i}, I think ({i}).",
        "response 2": f"Perhaps {i} or so ({i}).", "label": lab, "category": "math" if i < 20 else "chat"})
        for i, (lab, _pre, _post) in enumerate(rows)) + "\n")
    path = tmp_path / "ties.duckdb"
    mapping, shape = parse_map(["prompt=prompt,a=response 1,b=response 2,label=label,subset=category"],
                               label="a=0,b=1,tie=2")
    with open_study(path) as st:
        res = ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        assert res.n_read == N_PAIRS and res.n_ties == 10
        texts = st.df("SELECT t.response, t.text_id FROM texts t")
        tid = dict(zip(texts["response"], texts["text_id"]))
        with st.transaction() as cur:
            for mid, role, col in (("rm-pre", "pre", 1), ("rm-post", "post", 2)):
                cur.execute("INSERT INTO models (model_id, name, role, created_at) VALUES (?, ?, ?, now())",
                            [mid, mid, role])
                sc = []
                for i, r in enumerate(rows):
                    sc.append((mid, tid[f"It is {2 * i}, I think ({i})."], r[col]))
                    sc.append((mid, tid[f"Perhaps {i} or so ({i})."], 0.0))
                cur.register("_s", pd.DataFrame(sc, columns=["model_id", "text_id", "reward"]))
                cur.execute("INSERT INTO scores (model_id, text_id, reward) SELECT * FROM _s")
                cur.unregister("_s")
    return path


WANT = {"pre": (18, 27, 3), "post": (21, 27, 3)}  # agree, decided, RM ties


def test_agreement_stats_leave_human_ties_out_and_count_them_beside(tmp_path):
    from analysis.fit.study_fit import fit_study, summary

    path = build_planted_ties(tmp_path)
    with open_study(path) as st:
        fit_study(st)
        stored = st.df("SELECT role, slice, value, agree, decided, tie, human_tie, agreement FROM agreement_stats")
        s = summary(st)
    allr = stored[stored["slice"] == "all"].set_index("role")
    for role, (agree, dec, tie) in WANT.items():
        r = allr.loc[role]
        assert (r["agree"], r["decided"], r["tie"], r["human_tie"]) == (agree, dec, tie, 10)
        assert r["agreement"] == pytest.approx(agree / dec)
    # per subset too: 'math' holds pairs 0-19 (5 human ties), 'chat' 20-39 (5)
    sub = stored[(stored["slice"] == "subset")]
    assert sub.groupby("role")["decided"].sum().to_dict() == {"post": 27, "pre": 27}
    assert set(sub["human_tie"]) == {5}
    js = {r["role"]: r for r in s["agreement_stats"] if r["slice"] == "all"}
    txt = {r["role"]: r for r in s["agreement"] if r["group"] == "all"}
    for role, (agree, dec, _tie) in WANT.items():
        assert js[role]["decided"] == txt[role]["decided"] == dec
        assert js[role]["agreement"] == pytest.approx(txt[role]["agreement"]) == pytest.approx(agree / dec)
        assert js[role]["human_tie"] == txt[role]["human_tie"] == 10


async def test_every_consumer_prints_the_same_share_and_denominator(tmp_path):
    """CLI summary (text and --json), the report's Markdown (Findings and the first agreement table) and
    the app's regimes screen: the same agreement over the same decided pairs, human ties shown beside."""
    from rmtui.app import RmtuiApp

    path = build_planted_ties(tmp_path)
    r = run_cli("fit", "--study", path)
    assert r.code == 0, r.all
    js = run_cli("summary", "--study", path, "--json")
    assert js.code == 0, js.all
    data = json.loads(js.out)
    stats = {x["role"]: x for x in data["agreement_stats"] if x["slice"] == "all"}
    for role, (agree, dec, _t) in WANT.items():
        assert (stats[role]["decided"], stats[role]["human_tie"]) == (dec, 10)
        assert stats[role]["agreement"] == pytest.approx(agree / dec)
    shares = {role: f"{a / d:.3f}" for role, (a, d, _t) in WANT.items()}  # 0.667, 0.778

    text = run_cli("summary", "--study", path)
    assert text.code == 0, text.all
    row = {role: next(ln for ln in text.out.splitlines() if f"rm-{role} ({role})" in ln) for role in WANT}
    for role, (agree, dec, tie) in WANT.items():
        cells = row[role].split()
        assert shares[role] in cells and str(dec) in cells and "10" in cells, row[role]

    rep = run_cli("report", "--study", path, "-o", tmp_path / "rep")
    assert rep.code == 0, rep.all
    md = (tmp_path / "rep" / "report.md").read_text()
    first = next(ln for ln in md.splitlines() if ln.startswith("- **Agreement**"))
    for role, (agree, dec, tie) in WANT.items():
        assert f"{role}-D {shares[role]}" in first and f"({dec} decided, {tie} ties" in first, first
    assert "10 human ties" in first
    table = md[md.index("Agreement and misalignment per RM and slice"):]
    table = table[: table.index("\n\n", table.index("|"))]
    alls = [ln for ln in table.splitlines() if "| all | all |" in ln]
    assert len(alls) == 2 and all(" 27 " in ln and " 10 " in ln for ln in alls), table

    app = RmtuiApp(path, keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(160, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("m")  # the regimes screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        line = " ".join(str(app.screen.query_one("#agreement").render()).split())
    for role, (agree, dec, tie) in WANT.items():
        assert f"{role}-D {shares[role]} of {dec} decided" in line, line
    assert "human ties 10 (left out)" in line
