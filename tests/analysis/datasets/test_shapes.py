"""Datasets in their published shapes: A/B with a label, ties, several annotators, scores, lists,
dimensions, attributes; the readers' guarantees (stable ids, bad rows named, --strict, NaN)."""

from __future__ import annotations

import json

import pytest

from analysis.datasets.readers import Issue, Pair, ReadOptions, read_pairs
from analysis.errors import InputError
from analysis.datasets.ingest import ingest
from analysis.datasets.shapes import majority, parse_label_spec, parse_map
from analysis.store import open_study


def _write(tmp_path, name, rows, raw_tail=""):
    f = tmp_path / name
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + raw_tail)
    return f


def _read(f, items, label=None, pairs=None):
    mapping, shape = parse_map(items, label=label, pairs=pairs)
    out = list(read_pairs(f, ReadOptions(mapping=mapping, shape=shape)))
    return [p for p in out if isinstance(p, Pair)], [i for i in out if isinstance(i, Issue)]


AB = "prompt=q,a=r1,b=r2,label=w"


def _ab_rows(labels):
    return [{"q": f"question {i}", "r1": f"answer A{i}", "r2": f"answer B{i}", "w": w} for i, w in enumerate(labels)]


@pytest.mark.parametrize("labels,spec,expected", [
    ([1, 2, 1], None, ["a", "b", "a"]),
    (["A", "B", "b"], None, ["a", "b", "b"]),
    (["model_a", "model_b", "tie", "tie (bothbad)"], None, ["a", "b", "tie", "tie"]),
    ([1.0, 2.0], None, ["a", "b"]),
    ([-1, 1, 1], "a=-1,b=+1", ["a", "b", "b"]),
    ([0, 1, 0], "a=0,b=1", ["a", "b", "a"]),
    ([1, 2, 0], "a=1,b=2,tie=0", ["a", "b", "tie"]),
    (["x", "y", "same"], "a=x,b=y,tie=same|equal", ["a", "b", "tie"]),
])
def test_label_spellings(tmp_path, labels, spec, expected):
    f = _write(tmp_path, "ab.jsonl", _ab_rows(labels))
    pairs, issues = _read(f, [AB], label=spec)
    assert not [i for i in issues if i.fatal]
    assert [p.extra["preference"] for p in pairs] == expected
    for p, pref, i in zip(pairs, expected, range(len(labels))):
        if pref == "b":  # the winner is chosen
            assert p.chosen_response == f"answer B{i}" and p.rejected_response == f"answer A{i}"
            assert p.extra["a_is_chosen"] is False
        else:  # a, or a tie by convention chosen = a
            assert p.chosen_response == f"answer A{i}" and p.rejected_response == f"answer B{i}"
        assert p.extra["human_tie"] is (pref == "tie")
        assert p.chosen_context == f"\n\nHuman: question {i}"


@pytest.mark.parametrize("labels,counts", [([-1, 1, 1], "-1 (1 record), 1 (2)"), ([0, 1, 1], "0 (1 record), 1 (2)"),
                                           ([1, 2, 0], "0 (1 record), 1 (1), 2 (1)")])
def test_ambiguous_numeric_labels_are_refused(tmp_path, labels, counts):
    # the first row's label 1 must not be read as "A won" before the -1 / 0 rows are seen; the message
    # lists the values with their counts and proposes no mapping of its own (issue 24 item 2)
    f = _write(tmp_path, "ab.jsonl", _ab_rows(labels))
    with pytest.raises(InputError) as e:
        _read(f, [AB])
    msg = str(e.value)
    assert "'w'" in msg and counts in msg and "--label a=VALUE,b=VALUE" in msg
    assert "e.g." not in msg


def test_unknown_label_string_is_a_bad_row_named_by_line(tmp_path):
    f = _write(tmp_path, "ab.jsonl", _ab_rows(["A", "maybe", "B"]))
    pairs, issues = _read(f, [AB])
    assert len(pairs) == 2
    (bad,) = [i for i in issues if i.fatal]
    assert bad.line == 2 and bad.kind == "bad_label" and "maybe" in bad.message


def test_label_spec_errors():
    with pytest.raises(InputError, match="both a and b"):
        parse_label_spec("a=1")
    with pytest.raises(InputError, match="given for both"):
        parse_label_spec("a=1,b=1")
    with pytest.raises(InputError, match="not one of a, b, tie"):
        parse_label_spec("a=1,b=2,c=3")


def test_prompt_split_in_two_columns(tmp_path):
    f = _write(tmp_path, "alpaca.jsonl", [
        {"instruction": "Translate", "input": "chat", "output_1": "cat", "output_2": "dog", "preference": 1},
        {"instruction": "Say hi", "input": "", "output_1": "hi", "output_2": "no", "preference": 2}])
    pairs, _ = _read(f, ["prompt=instruction+input,a=output_1,b=output_2,label=preference"])
    assert pairs[0].chosen_context == "\n\nHuman: Translate\n\nchat"
    assert pairs[1].chosen_context == "\n\nHuman: Say hi"  # an empty input adds nothing
    assert pairs[1].chosen_response == "no"


def test_majority_rule():
    assert majority(2, 1, 0) == "a"
    assert majority(0, 3, 0) == "b"
    assert majority(1, 1, 1) == "tie"
    assert majority(2, 2, 0) == "tie"  # no majority: a tie
    assert majority(1, 0, 2) == "tie"


def test_several_annotators_and_list_column(tmp_path):
    rows = [
        {"q": "q0", "r1": "x0", "r2": "y0", "n1": 1, "n2": 1, "n3": 1, "votes": [1, 1, 1]},
        {"q": "q1", "r1": "x1", "r2": "y1", "n1": 2, "n2": 1, "n3": 2, "votes": [2, 1, 2]},
        {"q": "q2", "r1": "x2", "r2": "y2", "n1": 1, "n2": 2, "n3": 0, "votes": [1, 2, 0]},
        {"q": "q3", "r1": "x3", "r2": "y3", "n1": 0, "n2": None, "n3": 0, "votes": [0, None, 0]},
    ]
    f = _write(tmp_path, "multi.jsonl", rows)
    for items in (["prompt=q,a=r1,b=r2,label=n1,n2,n3"], ["prompt=q,a=r1,b=r2,label=votes"]):
        pairs, issues = _read(f, items, label="a=1,b=2,tie=0")
        assert not issues
        got = [(p.extra["preference"], p.extra["votes_a"], p.extra["votes_b"], p.extra["votes_tie"],
                round(p.extra["annotator_agreement"], 3)) for p in pairs]
        assert got == [("a", 3, 0, 0, 1.0), ("b", 1, 2, 0, 0.667), ("tie", 1, 1, 1, 0.333), ("tie", 0, 0, 2, 1.0)]
        assert pairs[1].chosen_response == "y1"


def test_scores_decide_and_margin_is_stored(tmp_path):
    f = _write(tmp_path, "shp.jsonl", [
        {"post": "p0", "ca": "A0", "cb": "B0", "sa": 10, "sb": 3},
        {"post": "p1", "ca": "A1", "cb": "B1", "sa": 2, "sb": 7.5},
        {"post": "p2", "ca": "A2", "cb": "B2", "sa": 4, "sb": 4}])
    pairs, _ = _read(f, ["prompt=post,a=ca,b=cb,score_a=sa,score_b=sb"])
    assert [p.extra["preference"] for p in pairs] == ["a", "b", "tie"]
    assert [p.extra["human_margin"] for p in pairs] == [7.0, 5.5, 0.0]
    assert pairs[1].chosen_response == "B1"


def _uf_row(scores, texts=None):
    texts = texts or [f"completion {i}" for i in range(len(scores))]
    return {"instruction": "Write", "completions": [
        {"response": t, "overall_score": s, "annotations": {"helpfulness": {"Rating": str(int(s) % 5 + 1)}}}
        for t, s in zip(texts, scores)]}


def test_rated_list_expanded_by_rule(tmp_path):
    f = _write(tmp_path, "uf.jsonl", [_uf_row([6.0, 9.0, 3.0, 7.5])])
    base = ["prompt=instruction,completions=completions,text=response,rating=overall_score"]
    pairs, _ = _read(f, base)  # best-worst (default)
    assert [(p.chosen_response, p.rejected_response) for p in pairs] == [("completion 1", "completion 2")]
    assert pairs[0].extra["source_item"] == "1>2" and pairs[0].extra["human_margin"] == 6.0
    assert pairs[0].source_row == 1
    pairs, _ = _read(f, base, pairs="adjacent")
    assert [p.extra["source_item"] for p in pairs] == ["1>3", "3>0", "0>2"]
    pairs, _ = _read(f, base, pairs="all")
    assert len(pairs) == 6 and len({p.pair_id for p in pairs}) == 6
    assert all(p.source_row == 1 for p in pairs)


def test_ranked_list_and_equal_ratings_are_ties(tmp_path):
    f = _write(tmp_path, "rank.jsonl", [
        {"prompt": "p", "answers": ["best", "middle", "worst"]},
        {"prompt": "p2", "answers": ["x", "y"], "rk": [2, 1]},
        {"prompt": "p3", "answers": ["u", "v"], "sc": [5, 5]}])
    pairs, _ = _read(f, ["prompt=prompt,completions=answers,rank=@position"], pairs="adjacent")
    assert [(p.chosen_response, p.rejected_response) for p in pairs[:2]] == [("best", "middle"), ("middle", "worst")]
    pairs, _ = _read(f, ["prompt=prompt,completions=answers,ranks=rk"])
    assert [(p.chosen_response, p.rejected_response) for p in pairs] == [("y", "x")]  # rank 1 beats rank 2
    pairs, issues = _read(f, ["prompt=prompt,completions=answers,ratings=sc"])
    assert pairs[-1].extra["human_tie"] is True and pairs[-1].extra["preference"] == "tie"
    assert [i.line for i in issues if i.fatal] == [1, 2]  # no ratings list in those rows: named


def test_two_dimensions_are_two_subsets(tmp_path):
    f = _write(tmp_path, "pku-train.jsonl", [
        {"prompt": "q", "response_0": "r0", "response_1": "r1", "better_response_id": 0, "safer_response_id": 1}])
    pairs, _ = _read(f, ["prompt=prompt,a=response_0,b=response_1,label:better=better_response_id,"
                         "label:safer=safer_response_id"], label="a=0,b=1")
    assert [(p.subset, p.extra["dimension"], p.chosen_response) for p in pairs] == [
        ("pku:better", "better", "r0"), ("pku:safer", "safer", "r1")]
    assert pairs[0].pair_id != pairs[1].pair_id


def test_map_errors_are_one_line():
    with pytest.raises(InputError, match="label=COLUMN"):
        parse_map(["a=x,b=y"])
    with pytest.raises(InputError, match="label=COLUMN"):
        parse_map(["a=x,b=y,margin=m"])  # a margin says how much, not who won
    with pytest.raises(InputError, match="'bogus' is not one of"):
        parse_map(["a=x,b=y,bogus=z"])
    with pytest.raises(InputError, match="rating=KEY"):
        parse_map(["completions=c"])
    with pytest.raises(InputError, match="best-worst"):
        parse_map(["completions=c,rating=s"], pairs="sometimes")
    with pytest.raises(InputError, match="attr.safe.b"):
        parse_map(["a=x,b=y,label=w,attr.safe.a=s0"])
    # a plain map keeps today's reader
    assert parse_map(["chosen=c,rejected=r,prompt=p"]) == ({"chosen": "c", "rejected": "r", "prompt": "p"}, None)


def test_ab_ingest_guarantees(tmp_path):
    """Stable ids (re-ingest adds nothing), ties stored and counted, bad rows named, bare NaN read, --strict."""
    rows = _ab_rows(["model_a", "tie", "model_b", "tie (bothbad)"])
    f = tmp_path / "arena.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n"
                 + '{"q": "nan row", "r1": "x", "r2": NaN, "w": "model_a"}\n' + "{broken\n")
    mapping, shape = parse_map([AB])
    with open_study(tmp_path / "s.duckdb") as st:
        res = ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        assert (res.n_read, res.n_added, res.n_ties) == (4, 4, 2)
        assert sorted((i.line, i.kind) for i in res.skipped) == [(5, "missing_field"), (6, "malformed_json")]
        assert "'r2'" in [i for i in res.skipped if i.line == 5][0].message
        df = st.df("SELECT preference, human_tie, a_is_chosen, label_raw, chosen_response FROM pairs ORDER BY source_row")
        assert df["preference"].tolist() == ["a", "tie", "b", "tie"]
        assert df["human_tie"].tolist() == [False, True, False, True]
        assert df["label_raw"].tolist() == ["model_a", "tie", "model_b", "tie (bothbad)"]
        assert df["chosen_response"].tolist() == ["answer A0", "answer A1", "answer B2", "answer A3"]
        again = ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        assert again.n_added == 0
        with pytest.raises(InputError, match=r"arena.jsonl:5"):
            ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape), strict=True)
        assert st.scalar("SELECT count(*) FROM pairs") == 4


def test_attributes_become_features_of_the_texts(tmp_path):
    f = _write(tmp_path, "pku-test.jsonl", [
        {"prompt": "q0", "response_0": "ok", "response_1": "bad", "better_response_id": 1, "safer_response_id": 0,
         "is_response_0_safe": True, "is_response_1_safe": False},
        {"prompt": "q1", "response_0": "x", "response_1": "y", "better_response_id": 0, "safer_response_id": 0,
         "is_response_0_safe": True, "is_response_1_safe": True}])
    mapping, shape = parse_map(["prompt=prompt,a=response_0,b=response_1,label=better_response_id,"
                                "attr.harmless.a=is_response_0_safe,attr.harmless.b=is_response_1_safe,"
                                "role.harmless=target"], label="a=0,b=1")
    with open_study(tmp_path / "s.duckdb") as st:
        res = ingest(st, str(f), ReadOptions(mapping=mapping, shape=shape))
        assert res.featurizer == "pku" and res.n_attr_values == 4
        d = st.df("SELECT * FROM feature_defs")
        assert d[["featurizer", "name", "kind", "role"]].values.tolist() == [["pku", "harmless", "binary", "target"]]
        v = st.df("SELECT t.response, f.value FROM features f JOIN texts t USING (text_id) ORDER BY t.response")
        assert dict(zip(v["response"], v["value"])) == {"bad": 0.0, "ok": 1.0, "x": 1.0, "y": 1.0}
        # row 1: B ("bad") won on "better": the chosen text is the unsafe one
        assert st.scalar("SELECT chosen_response FROM pairs WHERE source_row = 1") == "bad"


def test_run_config_reads_shapes_and_presets(tmp_path):
    """[[data]] tables take map (with A/B keys), label, pairs and preset like the CLI."""
    from analysis.pipeline.run import run_config

    from tests.conftest import ROOT

    (tmp_path / "pairwise-test.jsonl").write_text(
        '{"instruction":"q","input":"","response1":"A","response2":"B","annotator1":1,"annotator2":2,"annotator3":0}\n'
        '{"instruction":"q2","input":"x","response1":"A2","response2":"B2","annotator1":2,"annotator2":2,"annotator3":1}\n')
    study = tmp_path / "s.duckdb"
    fixture = ROOT / "tests" / "fixtures" / "datasets" / "pku-saferlhf.jsonl"
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'study = "{study}"\n[[data]]\nsource = "pairwise-test.jsonl"\n'
                   'map = { prompt = "instruction+input", a = "response1", b = "response2", '
                   'label = "annotator1,annotator2,annotator3" }\nlabel = "a=1,b=2,tie=0"\n'
                   f'[[data]]\nsource = "{fixture}"\npreset = "pku-saferlhf"\n')
    r = run_config(cfg)
    assert len(r.ran) == 2
    with open_study(study, read_only=True) as st:
        df = st.df("SELECT subset, preference, votes_a, votes_b, votes_tie, chosen_response FROM pairs "
                   "ORDER BY subset, source_row")
        assert df[df.subset == "pairwise"][["preference", "chosen_response"]].values.tolist() == [["tie", "A"], ["b", "B2"]]
        assert sorted(set(df.subset)) == ["pairwise", "pku-saferlhf:better", "pku-saferlhf:safer"]
        assert st.scalar("SELECT count(*) FROM features WHERE featurizer = 'pku_saferlhf'") > 0
    assert run_config(cfg).ran == []  # unchanged: skipped


def test_killed_ab_ingest_keeps_whole_chunks_and_a_rerun_completes_pairs_and_attributes(tmp_path):
    """SIGKILL in the middle of an A/B ingest with attributes: whole chunks of pairs, and a rerun adds the
    rest and completes the attribute features (written per chunk after its pairs)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    n_rows = 40_000
    big = tmp_path / "ab-train.jsonl"
    with open(big, "w") as out:
        for i in range(n_rows):
            out.write(json.dumps({"q": f"question {i}", "x": f"yes {i}", "y": f"no {i}",
                                  "w": ["model_a", "model_b", "tie"][i % 3], "sx": i % 2, "sy": 1 - i % 2}) + "\n")
    items = "prompt=q,a=x,b=y,label=w,attr.safe.a=sx,attr.safe.b=sy"
    study = tmp_path / "k.duckdb"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rmtui", "ingest", str(big), "--study", str(study), "--map", items],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        wal = study.with_name(study.name + ".wal")
        size = (study.stat().st_size if study.exists() else 0) + (wal.stat().st_size if wal.exists() else 0)
        if size > 3_000_000:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    mapping, shape = parse_map([items])
    with open_study(study) as st:
        n = st.scalar("SELECT count(*) FROM pairs")
        assert n < n_rows, "the job finished before it was killed; make the file bigger"
        assert n > 0 and n % 2000 == 0, n
        assert st.scalar("SELECT count(*) FROM texts") == 2 * n
        res = ingest(st, str(big), ReadOptions(mapping=mapping, shape=shape))
        assert res.n_added == n_rows - n
        assert st.scalar("SELECT count(*) FROM pairs") == n_rows
        assert st.scalar("SELECT count(*) FROM pairs WHERE human_tie") == n_rows // 3 + (n_rows % 3 > 2)
        assert st.scalar("SELECT count(*) FROM features WHERE featurizer = 'ab'") == 2 * n_rows
        assert st.scalar("SELECT count(*) FROM feature_defs WHERE featurizer = 'ab'") == 1
