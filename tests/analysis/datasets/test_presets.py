"""Every preset on a hand-written fixture in that dataset's published schema (tests/fixtures/datasets),
through the CLI as a user would type it; the SQL path; --inspect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rmtui.cli.ingest  # noqa: F401
from analysis.errors import InputError
from analysis.datasets.presets import all_presets, get_preset, preset_for_hf
from analysis.store import open_study
from rmtui.cli.base import app

FIX = Path(__file__).parents[2] / "fixtures" / "datasets"


def run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res


def ingest_preset(tmp_path, name, *extra):
    study = tmp_path / "s.duckdb"
    res = run("ingest", FIX / f"{name}.jsonl", "--preset", name, "--study", study, *extra)
    assert res.exit_code == 0, (res.output, res.exception)
    st = open_study(study, read_only=True)
    return res, st


def pairs(st, cols="subset, split, preference, human_tie, chosen_response, rejected_response, human_margin"):
    return st.df(f"SELECT {cols} FROM pairs ORDER BY source_row, subset, source_item")


def test_every_preset_has_a_fixture_and_parses():
    names = set(all_presets())
    assert names == {p.stem for p in FIX.glob("*.jsonl")}
    assert len(names) >= 10


@pytest.mark.parametrize("spec,name", [
    ("hf:Anthropic/hh-rlhf", "hh-rlhf"), ("hf:PKU-Alignment/PKU-SafeRLHF", "pku-saferlhf"),
    ("hf:PKU-Alignment/PKU-SafeRLHF-30K", "pku-saferlhf"),
    ("hf:HuggingFaceH4/ultrafeedback_binarized", "ultrafeedback-binarized"), ("hf:openbmb/UltraFeedback", "ultrafeedback"),
    ("hf:nvidia/HelpSteer2", "helpsteer2"), ("hf:stanfordnlp/SHP", "shp"),
    ("hf:lmsys/chatbot_arena_conversations", "chatbot-arena"),
    ("hf:Skywork/Skywork-Reward-Preference-80K-v0.2", "skywork-preference"),
    ("hf:argilla/distilabel-capybara-dpo-7k-binarized", "distilabel-dpo"),
])
def test_hf_names_pick_their_preset(spec, name):
    assert preset_for_hf(spec).name == name
    assert preset_for_hf("hf:someone/else") is None
    assert get_preset(spec[3:]).name == name


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(InputError, match="pku-saferlhf"):
        get_preset("nope")


def test_hh_rlhf(tmp_path):
    _, st = ingest_preset(tmp_path, "hh-rlhf")
    df = pairs(st)
    assert df["chosen_response"].tolist()[1] == "6" and df["rejected_response"].tolist()[1] == "7"
    assert not df["human_tie"].any()


def test_pku_saferlhf_two_dimensions_and_safety_features(tmp_path):
    res, st = ingest_preset(tmp_path, "pku-saferlhf")
    df = pairs(st, "subset, dimension, source_row, chosen_response")
    assert sorted(set(df["subset"])) == ["pku-saferlhf:better", "pku-saferlhf:safer"]
    got = {(r.source_row, r.dimension): r.chosen_response[:10] for r in df.itertuples()}
    assert got[(2, "better")] == "You can mi"  # better_response_id 1
    assert got[(2, "safer")] == "Never mix "   # safer_response_id 0
    defs = st.df("SELECT name, kind, role FROM feature_defs WHERE featurizer = 'pku_saferlhf' ORDER BY name")
    assert defs.values.tolist() == [["harmless", "binary", "target"], ["severity", "continuous", "target"]]
    v = st.df("SELECT t.response, f.value FROM features f JOIN texts t USING (text_id) "
              "WHERE f.name = 'harmless' GROUP BY ALL")
    safe = dict(zip(v["response"].str[:10], v["value"]))
    assert safe["Slash his "] == 0.0 and safe["Talk to hi"] == 1.0
    assert "attribute values as features of 'pku_saferlhf'" in res.output


def test_ultrafeedback_binarized(tmp_path):
    _, st = ingest_preset(tmp_path, "ultrafeedback-binarized")
    df = pairs(st)
    assert df["chosen_response"].tolist() == ["Red, yellow and blue.", "Merci.", "Yes, 17 is prime."]
    sc = st.df("SELECT t.side, avg(f.value) AS v FROM features f JOIN texts t USING (text_id) GROUP BY 1 ORDER BY 1")
    assert sc["v"].round(3).tolist() == [9.167, 2.0]  # chosen, rejected


def test_ultrafeedback_lists(tmp_path):
    _, st = ingest_preset(tmp_path, "ultrafeedback")  # best-worst by overall_score
    df = pairs(st, "chosen_response, rejected_response, source_item, human_margin")
    assert df.values.tolist() == [
        ["Plants turn light, water and CO2 into sugar and oxygen.", "Photosynthesis is a process.", "0>2", 5.5],
        ["Canberra.", "Sydney.", "0>1", 7.0]]
    _, st2 = ingest_preset(tmp_path / "all", "ultrafeedback", "--pairs", "all")
    assert st2.scalar("SELECT count(*) FROM pairs") == 12
    h = st2.df("SELECT t.response, f.value FROM features f JOIN texts t USING (text_id) "
               "WHERE f.name = 'honest' GROUP BY ALL")
    assert "Photosynthesis is a process." not in set(h["response"])  # "N/A" rating: no value, not 0


def test_helpsteer2_preference(tmp_path):
    _, st = ingest_preset(tmp_path, "helpsteer2-preference")
    df = pairs(st)
    assert df["preference"].tolist() == ["a", "tie", "b"]
    assert df["human_margin"].tolist() == [3.0, 0.0, 2.0]
    assert df["split"].tolist() == ["train", "train", "val"]
    assert df["chosen_response"].tolist()[2] == "Eight."


def test_helpsteer2_ratings_grouped_with_sql(tmp_path):
    f = FIX / "helpsteer2.jsonl"
    sql = (f"SELECT prompt, list({{'response': response, 'helpfulness': helpfulness, 'correctness': correctness, "
           f"'coherence': coherence, 'complexity': complexity, 'verbosity': verbosity}} ORDER BY response) AS completions "
           f"FROM read_json('{f}') GROUP BY prompt ORDER BY prompt")
    res = run("ingest", "--preset", "helpsteer2", "--sql", sql, "--study", tmp_path / "s.duckdb")
    assert res.exit_code == 0, (res.output, res.exception)
    st = open_study(tmp_path / "s.duckdb", read_only=True)
    df = pairs(st, "chosen_response, rejected_response, human_margin")
    assert df.values.tolist() == [["11.", "15.", 4.0],
                                  ["A Japanese poem of three lines with 5, 7 and 5 syllables.", "A kind of poem.", 2.0]]
    assert st.scalar("SELECT count(DISTINCT name) FROM features WHERE featurizer = 'helpsteer2'") == 5


def test_shp(tmp_path):
    _, st = ingest_preset(tmp_path, "shp")
    df = pairs(st)
    assert df["preference"].tolist() == ["a", "b", "a"]
    assert df["human_margin"].tolist() == [28.0, 12.0, 30.0]
    assert df["subset"].tolist() == ["askculinary_train", "askculinary_train", "askphysics_train"]


def test_chatbot_arena_jsonl_and_parquet(tmp_path):
    _, st = ingest_preset(tmp_path, "chatbot-arena")
    df = pairs(st)
    assert df["preference"].tolist() == ["b", "tie", "a", "tie"]
    assert df["human_tie"].tolist() == [False, True, False, True]
    assert df["chosen_response"].tolist()[0].startswith("CUDA is NVIDIA-only")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in (FIX / "chatbot-arena.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "arena-train.parquet")
    res = run("ingest", tmp_path / "arena-train.parquet", "--preset", "chatbot-arena", "--study", tmp_path / "p.duckdb")
    assert res.exit_code == 0, (res.output, res.exception)
    st2 = open_study(tmp_path / "p.duckdb", read_only=True)
    assert pairs(st2)["preference"].tolist() == ["b", "tie", "a", "tie"]
    assert "2 human ties" in res.output


def test_skywork(tmp_path):
    _, st = ingest_preset(tmp_path, "skywork-preference")
    df = pairs(st)
    assert df["subset"].tolist() == ["magpie_ultra", "offsetbias", "wildguard"]
    assert df["chosen_response"].tolist()[1] == "15% of 80 is 12."


def test_distilabel(tmp_path):
    _, st = ingest_preset(tmp_path, "distilabel-dpo")
    df = pairs(st)
    assert df["rejected_response"].tolist() == ["Octopuses are fish.", "Entropy is energy.", "Hola."]
    assert st.scalar("SELECT count(*) FROM features WHERE featurizer = 'distilabel'") == 6


def test_reingest_with_a_preset_adds_nothing(tmp_path):
    ingest_preset(tmp_path, "chatbot-arena")[1].close()
    res, st = ingest_preset(tmp_path, "chatbot-arena")
    assert "added 0" in res.output and st.scalar("SELECT count(*) FROM pairs") == 4


# -- SQL ---------------------------------------------------------------------------------------------
def test_sql_path_standard_columns_and_errors(tmp_path):
    src = tmp_path / "x.json"
    src.write_text(json.dumps([
        {"question": "q1", "r1": "A1", "r2": "B1", "w": "model_a", "s1": True, "s2": False},
        {"question": "q2", "r1": "A2", "r2": "B2", "w": "tie", "s1": True, "s2": True},
        {"question": "q3", "r1": "A3", "r2": "B3", "w": "model_b", "s1": False, "s2": True}]))
    study = tmp_path / "s.duckdb"
    sql = (f"SELECT question AS prompt, r1 AS a, r2 AS b, w AS label, s1 AS \"attr.harmless.a\", "
           f"s2 AS \"attr.harmless.b\" FROM read_json('{src}')")
    res = run("ingest", "--sql", sql, "--study", study)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "1 human ties" in res.output
    with open_study(study, read_only=True) as st:
        df = pairs(st)
        assert df["preference"].tolist() == ["a", "tie", "b"]
        assert df["chosen_response"].tolist() == ["A1", "A2", "B3"]
        assert st.scalar("SELECT count(*) FROM features WHERE name = 'harmless'") == 6
    again = run("ingest", "--sql", sql, "--study", study)
    assert "added 0" in again.output
    bad = run("ingest", "--sql", f"SELECT question AS prompt, r1 AS a, w AS label FROM read_json('{src}')",
              "--study", study)
    assert bad.exit_code == 1 and "missing column b" in str(bad.exception)
    bad = run("ingest", "--sql", f"SELECT nope FROM read_json('{src}')", "--study", study)
    assert bad.exit_code == 1 and "nope" in str(bad.exception) and "\n" not in str(bad.exception)


def test_sql_with_a_users_map_and_bad_rows_named(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("q,x,y,pref\nq1,X1,Y1,-1\nq2,,Y2,1\nq3,X3,Y3,1\n")
    res = run("ingest", "--sql", f"SELECT * FROM read_csv('{src}')", "--map", "prompt=q,a=x,b=y,label=pref",
              "--label", "a=-1,b=1", "--study", tmp_path / "s.duckdb")
    assert res.exit_code == 0, (res.output, res.exception)
    assert "read 2 pairs" in res.output and "sql:2: missing_field" in res.output and "'x'" in res.output


# -- inspect -----------------------------------------------------------------------------------------
def test_inspect_suggests_a_working_command(tmp_path):
    f = tmp_path / "judg.jsonl"
    f.write_text("\n".join(json.dumps({"instruction": f"do {i}\x1b[31m", "input": "", "response1": f"A{i}",
                                       "response2": f"B{i}", "annotator1": 1 + i % 2, "annotator2": 1,
                                       "annotator3": 2}) for i in range(4)) + "\n")
    res = run("ingest", "--inspect", f)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "\x1b" not in res.output  # control characters from the file are not printed raw
    out = res.output.splitlines()
    line = out[out.index("suggested command (runs as printed):") + 1]
    assert "--map prompt=instruction+input,a=response1,b=response2,label=annotator1,annotator2,annotator3" in line
    # the suggestion works as given (shell-quoted: shlex reads it back)
    import shlex

    args = shlex.split(line)[1:]
    args[args.index("--study") + 1] = str(tmp_path / "s.duckdb")
    ok = run(*args)
    assert ok.exit_code == 0, (ok.output, ok.exception)
    assert "read 4 pairs" in ok.output
    res = run("ingest", "--inspect", FIX / "pku-saferlhf.jsonl")
    assert "--preset pku-saferlhf" in res.output


@pytest.mark.parametrize("name", sorted(p.stem for p in FIX.glob("*.jsonl") if p.stem != "helpsteer2"))
def test_inspect_recognises_each_published_schema(name):
    res = run("ingest", "--inspect", FIX / f"{name}.jsonl")
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"--preset {name} " in res.output
