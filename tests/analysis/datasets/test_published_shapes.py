"""Issue 24, the ingest side: preference sets in the shapes they were published in (tests/fixtures/
datasets/published), read through the CLI as a new user would: a pairwise JSONL with "response 1" /
"response 2" and a 0/1/2 label with ties, a three-annotator JSON array, expert judgments that repeat
items (either order), collisions of columns, and text that looks like JSON. Each test failed on the
code before these fixes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.store import open_study
from tests.helpers.cli import run_cli

ROOT = Path(__file__).parents[3]
PUB = ROOT / "tests" / "fixtures" / "datasets" / "published"
TIES = PUB / "pairwise-ties.jsonl"         # 48 records: label 0 = response 1, 1 = response 2, 2 = tie (12)
THREE = PUB / "three-annotators.json"      # 10 records, annotations [v1, v2, v3] with 1/2/0 (0 = tie)
EXPERT = PUB / "expert-judgments.jsonl"    # 15 judgments of 7 items (mt_bench_human_judgments shape)
TIES_MAP = "prompt=prompt,a=response 1,b=response 2,label=label"


def pairs(study, cols="source_row, preference, human_tie, a_is_chosen, chosen_response"):
    with open_study(study, read_only=True) as st:
        return st.df(f"SELECT {cols} FROM pairs ORDER BY source_row")


# -- item 2: the Ambiguous label hint ---------------------------------------------------------------
def test_ambiguous_label_lists_counts_and_the_presets_never_a_guess(tmp_path):
    res = run_cli("ingest", TIES, "--map", TIES_MAP, "--study", tmp_path / "s.duckdb")
    assert res.code == 1
    msg = res.all.replace("\n", " ")
    assert "Ambiguous label" in msg and "0 (24 records), 1 (12), 2 (12)" in msg  # over the whole column
    assert "--preset pku-saferlhf reads --label a=0,b=1" in msg and "--preset shp reads --label a=1,b=0" in msg
    # the old hint "e.g. --label a=1,b=2,tie=0" inverted every label of this 0 = first / 1 = second set
    assert "a=1,b=2,tie=0" not in msg and "e.g." not in msg


def test_pairwise_ties_read_with_their_card_meaning(tmp_path):
    study = tmp_path / "s.duckdb"
    res = run_cli("ingest", TIES, "--map", TIES_MAP + ",subset=category", "--label", "a=0,b=1,tie=2", "--study", study)
    assert res.code == 0, res.all
    assert "read 48 pairs, added 48" in res.out and "12 human ties" in res.out
    df = pairs(study, "source_row, subset, preference, human_tie, a_is_chosen, chosen_response, label_raw")
    assert len(df) == 48 and int(df["human_tie"].sum()) == 12
    assert sorted(df["subset"].unique()) == ["advice", "chitchat", "coding", "math"]
    r2 = df[df["source_row"] == 2].iloc[0]  # label 1: the second response won
    assert r2["preference"] == "b" and not r2["a_is_chosen"] and r2["chosen_response"].startswith("I would say topic 1")
    r1 = df[df["source_row"] == 1].iloc[0]
    assert r1["preference"] == "a" and r1["a_is_chosen"] and r1["chosen_response"].startswith("Topic 0 in brief")


# -- item 3: re-ingest with another mapping ----------------------------------------------------------
def test_reingest_with_another_label_is_refused_or_replaces(tmp_path):
    study = tmp_path / "s.duckdb"
    assert run_cli("ingest", TIES, "--map", TIES_MAP, "--label", "a=0,b=1,tie=2", "--study", study).code == 0
    again = run_cli("ingest", TIES, "--map", TIES_MAP, "--label", "a=0,b=1,tie=2", "--study", study)
    assert again.code == 0 and "added 0" in again.out  # the same reading adds nothing
    other = run_cli("ingest", TIES, "--map", TIES_MAP, "--label", "a=1,b=0,tie=2", "--study", study)
    assert other.code == 1 and "Source already ingested" in other.all and "--replace" in other.all
    assert "48 pairs" in other.all and "a=0,b=1,tie=2" in other.all and "a=1,b=0,tie=2" in other.all
    assert len(pairs(study)) == 48  # nothing added: one orientation only
    rep = run_cli("ingest", TIES, "--map", TIES_MAP, "--label", "a=1,b=0,tie=2", "--study", study, "--replace")
    assert rep.code == 0, rep.all
    assert "replaced the 48 pairs" in rep.out and "added 48" in rep.out
    df = pairs(study)
    assert len(df) == 48
    assert df[df["source_row"] == 1].iloc[0]["preference"] == "b"  # read the new way, all of them
    with open_study(study, read_only=True) as st:
        assert st.df("SELECT count(*) AS n FROM texts")["n"][0] == 96


# -- item 4: repeated judgments become one pair with votes --------------------------------------------
def test_expert_judgments_that_repeat_items_become_one_pair_with_votes(tmp_path):
    study = tmp_path / "s.duckdb"
    res = run_cli("ingest", EXPERT, "--preset", "chatbot-arena", "--study", study)
    assert res.code == 0, res.all
    assert "read 15 pairs, added 7" in res.out
    assert "merged 8 records" in res.out and "5 pairs hold several records' votes" in res.out
    assert "3 of them with records that disagreed" in res.out
    df = pairs(study, "source_row, preference, human_tie, votes_a, votes_b, votes_tie, n_records, merged_rows, "
                      "records_disagree, chosen_response")
    by = {int(r.source_row): r for r in df.itertuples()}
    assert sorted(by) == [1, 4, 6, 7, 11, 13, 14]
    # item 0: A, then B with the two conversations swapped (the same answer), then B: 2 to 1 for the prime
    assert (by[1].votes_a, by[1].votes_b, by[1].votes_tie, by[1].n_records) == (2, 1, 0, 3)
    assert by[1].preference == "a" and by[1].chosen_response == "A prime above 0 is 11." and by[1].records_disagree
    assert by[4].merged_rows == "4,5" and not by[4].records_disagree  # agree across the swap
    assert (by[7].votes_a, by[7].votes_tie, by[7].n_records) == (3, 1, 4)
    assert by[11].human_tie and by[11].votes_tie == 2
    # item 6: A in one order, A in the other: one vote each way, no majority: a tie
    assert by[14].human_tie and (by[14].votes_a, by[14].votes_b) == (1, 1) and by[14].records_disagree
    from analysis.store.pairs import merge_counts

    with open_study(study, read_only=True) as st:
        assert merge_counts(st) == {"merged_records": 8, "repeated_items": 5, "conflicting_items": 3}
        assert st.df("SELECT count(*) AS n FROM texts")["n"][0] == 14
        ing = st.df("SELECT n_merged, n_repeated_items, n_conflicting FROM ingests").iloc[0]
        assert tuple(int(x) for x in ing) == (8, 5, 3)
    again = run_cli("ingest", EXPERT, "--preset", "chatbot-arena", "--study", study)
    assert again.code == 0 and "added 0" in again.out and "merged" not in again.out
    df2 = pairs(study, "source_row, votes_a, votes_b, votes_tie")
    assert df2.equals(df[["source_row", "votes_a", "votes_b", "votes_tie"]])  # no vote counted twice


def test_a_reversed_repeat_that_flips_the_majority_turns_the_pair_round(tmp_path):
    f = tmp_path / "rep.jsonl"
    rec = lambda a, b, w: {"q": "Pick one.", "x": a, "y": b, "w": w}  # noqa: E731
    f.write_text("\n".join(json.dumps(r) for r in [rec("Left.", "Right.", "A"), rec("Left.", "Right.", "B"),
                                                    rec("Right.", "Left.", "A")]) + "\n")
    study = tmp_path / "s.duckdb"
    res = run_cli("ingest", f, "--map", "prompt=q,a=x,b=y,label=w", "--study", study)
    assert res.code == 0, res.all
    df = pairs(study, "source_row, preference, a_is_chosen, chosen_response, rejected_response, votes_a, votes_b")
    assert len(df) == 1
    r = df.iloc[0]  # oriented to row 1's A ("Left."): 1 vote for Left, 2 for Right
    assert (r.votes_a, r.votes_b, r.preference) == (1, 2, "b")
    assert r.chosen_response == "Right." and r.rejected_response == "Left." and not r.a_is_chosen
    with open_study(study, read_only=True) as st:
        sides = dict(st.df("SELECT side, response FROM texts").itertuples(index=False))
    assert sides == {"chosen": "Right.", "rejected": "Left."}


# -- the three-annotator JSON and --inspect's command, run as printed ---------------------------------
def _bash(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a printed command line through bash with ``rmtui`` on PATH (this checkout's)."""
    bindir = cwd / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "rmtui"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rmtui "$@"\n')
    exe.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
           "COLUMNS": "400"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _printed_command(spec: Path) -> str:
    res = run_cli("ingest", "--inspect", spec)
    assert res.code == 0, res.all
    out = res.out.splitlines()
    return out[out.index("suggested command (runs as printed):") + 1]


def test_inspect_scans_the_file_and_its_command_stops_at_the_one_question(tmp_path):
    f = tmp_path / "my data" / "pairwise ties.jsonl"  # spaces in the path and in the columns
    f.parent.mkdir()
    shutil.copy(TIES, f)
    res = run_cli("ingest", "--inspect", f)
    assert "label column label, values in all 48 records: 0 (24 records), 1 (12), 2 (12)" in res.out
    assert "proposed as subset=category" in res.out
    line = _printed_command(f)
    assert "'prompt=prompt,a=response 1,b=response 2,label=label,subset=category'" in line
    run = _bash(line, tmp_path)
    assert run.returncode == 1
    err = " ".join((run.stdout + run.stderr).split())
    assert "Ambiguous label" in err and "0 (24 records), 1 (12), 2 (12)" in err
    assert not (tmp_path / "study.duckdb").exists()  # item 9: the failed ingest left no study behind
    # the answer to that one question is all the command needs
    ok = _bash(line + " --label a=0,b=1,tie=2", tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "read 48 pairs, added 48" in " ".join(ok.stdout.split())
    assert len(pairs(tmp_path / "study.duckdb")) == 48


def test_inspect_command_ingests_as_printed_when_the_labels_say_it(tmp_path):
    f = tmp_path / "arena pairs.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"Q{i}?", "response 1": f"First {i}.", "response 2": f"Second {i}.",
                                       "winner": ["A", "B", "tie"][i % 3], "scenario": ["chat", "code"][i % 2]})
                           for i in range(9)) + "\n")
    line = _printed_command(f)
    run = _bash(line, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "read 9 pairs, added 9" in " ".join(run.stdout.split())
    df = pairs(tmp_path / "study.duckdb", "source_row, subset, human_tie")
    assert int(df["human_tie"].sum()) == 3 and sorted(df["subset"].unique()) == ["chat", "code"]


def test_three_annotator_json_through_the_inspected_command(tmp_path):
    line = _printed_command(THREE)
    assert "label=annotations" in line and "subset=task" in line
    stop = _bash(line, tmp_path)
    assert stop.returncode == 1 and "0 (8 records), 1 (11), 2 (11)" in " ".join((stop.stdout + stop.stderr).split())
    ok = _bash(line + " --label a=1,b=2,tie=0", tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    df = pairs(tmp_path / "study.duckdb", "source_row, subset, preference, votes_a, votes_b, votes_tie")
    assert len(df) == 10 and list(df["preference"]) == ["a", "a", "b", "tie", "tie", "tie", "b", "tie", "a", "b"]
    assert sorted(df["subset"].unique()) == ["facts", "writing"]


# -- item 5: collisions -------------------------------------------------------------------------------
def test_a_duplicate_csv_header_is_refused_naming_the_column(tmp_path):
    # a merged export with two "chosen" columns: DictReader silently took the second one
    res = run_cli("ingest", PUB / "collision-header.csv", "--study", tmp_path / "s.duckdb")
    assert res.code == 1 and "collision-header.csv:1: the header names the column 'chosen' twice (columns 2 and 4)" \
        in res.all
    assert run_cli("ingest", "--inspect", PUB / "collision-header.csv").code == 1
    assert not (tmp_path / "s.duckdb").exists()


@pytest.mark.parametrize("maps,column", [
    (["prompt=prompt,a=response 1,b=response 1,label=label"], "'response 1' is mapped to both a and b"),
    (["prompt=label,a=response 1,b=response 2,label=label"], "'label' is mapped to both prompt and label"),
    (["prompt=prompt,a=response 1,a=response 2,b=response 2,label=label"], "'a' is given twice"),
    (["prompt=prompt,a=response 1,b=response 2,label=label", "a=category"], "'a' is given twice"),
])
def test_one_column_two_roles_or_one_key_twice_is_refused(tmp_path, maps, column):
    args = [x for m in maps for x in ("--map", m)]
    res = run_cli("ingest", TIES, *args, "--label", "a=0,b=1,tie=2", "--study", tmp_path / "s.duckdb")
    assert res.code == 1 and column in res.all, res.all
    assert not (tmp_path / "s.duckdb").exists()


# -- item 6: text that looks like JSON, and non-string scalars ----------------------------------------
def test_json_looking_text_stays_text_and_scalars_become_text(tmp_path):
    study = tmp_path / "s.duckdb"
    res = run_cli("ingest", PUB / "json-looking.jsonl", "--study", study)
    assert res.code == 0, res.all
    assert "read 4 pairs" in res.out
    # the one record that holds an object, named by the file's line and its own column
    assert "json-looking.jsonl:5: bad_value: field 'chosen' holds a dict" in res.out
    df = pairs(study, "source_row, chosen_response, rejected_response")
    assert list(df["chosen_response"]) == ["[1, 3, 5]", '[{"name": "a"}, {"name": "b"}]', "42", "true"]
    assert list(df["rejected_response"]) == ["[2, 4, 6]", "I cannot do that.", "41", "false"]


def test_a_bad_side_is_named_by_the_files_own_column(tmp_path):
    f = tmp_path / "ab.jsonl"
    f.write_text(json.dumps({"q": "x", "response 1": {"k": 1}, "response 2": "fine", "w": "A"}) + "\n"
                 + json.dumps({"q": "y", "response 1": "ok", "response 2": "fine", "w": "B"}) + "\n")
    res = run_cli("ingest", f, "--map", "prompt=q,a=response 1,b=response 2,label=w", "--study", tmp_path / "s.duckdb")
    assert res.code == 0 and "ab.jsonl:1: bad_value: field 'response 1' holds a dict" in res.out


# -- item 9: a failed ingest leaves the study as it was ------------------------------------------------
def test_a_failed_ingest_leaves_no_new_file_and_an_existing_study_as_it_was(tmp_path):
    study = tmp_path / "new.duckdb"
    assert run_cli("ingest", tmp_path / "missing.jsonl", "--study", study).code == 1
    assert not study.exists() and not Path(str(study) + ".wal").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert run_cli("ingest", bad, "--study", study).code == 1
    assert not study.exists()
    assert run_cli("ingest", TIES, "--map", TIES_MAP, "--label", "a=0,b=1,tie=2", "--study", study).code == 0
    with open_study(study, read_only=True) as st:
        before = st.df("SELECT * FROM ingests ORDER BY ingest_id")
    assert run_cli("ingest", PUB / "three-annotators.json", "--map", "prompt=instruction,a=output_1,b=output_2,"
                   "label=annotations", "--study", study).code == 1  # Ambiguous label
    with open_study(study, read_only=True) as st:
        after = st.df("SELECT * FROM ingests ORDER BY ingest_id")
        assert st.df("SELECT count(*) AS n FROM pairs")["n"][0] == 48
    assert after.equals(before)


# -- traceable findings: exports carry source, source_row, a_is_chosen --------------------------------
def test_exports_carry_source_row_and_orientation(tmp_path):
    study = tmp_path / "s.duckdb"
    assert run_cli("ingest", EXPERT, "--preset", "chatbot-arena", "--study", study).code == 0
    for ext in ("jsonl", "csv", "md", "parquet"):
        out = tmp_path / f"x.{ext}"
        res = run_cli("export", "--study", study, "-o", out)
        assert res.code == 0, res.all
    recs = {r["source_row"]: r for r in map(json.loads, (tmp_path / "x.jsonl").read_text().splitlines())}
    assert sorted(recs) == [1, 4, 6, 7, 11, 13, 14]
    assert recs[13]["source"] == str(EXPERT) and recs[13]["a_is_chosen"] is False and recs[13]["chosen"] == "Maybe 54?"
    assert recs[7]["source_rows"] == "7,8,9,10" and recs[1]["a_is_chosen"] is True
    with open(tmp_path / "x.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"source", "source_row", "a_is_chosen"} <= set(rows[0])
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "x.parquet").to_pandas()
    assert {"source", "source_row", "a_is_chosen"} <= set(t.columns) and sorted(t["source_row"]) == sorted(recs)
    md = (tmp_path / "x.md").read_text()
    assert "row: 7,8,9,10 · a_is_chosen: True" in md and f"source: {EXPERT}" in md


def test_print_config_documents_the_label_key():
    res = run_cli("run", "--print-config")
    assert res.code == 0
    assert '# label = "a=0,b=1,tie=2"' in res.out and "dataset's card" in res.out
