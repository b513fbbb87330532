"""Readers, the split rule, bad input, idempotence."""

from __future__ import annotations

import gzip
import json

import pytest

from analysis.datasets.readers import (
    Issue, Pair, ReadOptions, read_pairs, split_transcript, subset_split_from_name, transcript_to_messages,
)
from analysis.errors import InputError
from analysis.datasets.ingest import ingest
from analysis.store import open_study

from tests.conftest import HH_FILES


def _pairs(items):
    return [i for i in items if isinstance(i, Pair)]


def _issues(items):
    return [i for i in items if isinstance(i, Issue)]


def test_split_multi_turn_at_last_assistant():
    t = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant: fine, thanks"
    ctx, resp = split_transcript(t)
    assert ctx == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?"
    assert resp == "fine, thanks"


def test_transcript_to_messages_roles():
    msgs = transcript_to_messages("\n\nHuman: a\n\nAssistant: b\n\nHuman: c", "d")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in msgs] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("name,expected", [
    ("harmless-base-test.jsonl.gz", ("harmless-base", "test")),
    ("helpful-rejection-sampled-train.jsonl", ("helpful-rejection-sampled", "train")),
    ("prefs.csv", ("prefs", "unknown")),
])
def test_subset_split_from_name(name, expected):
    assert subset_split_from_name(name) == expected


def test_hh_reader_context_differs(tmp_path):
    f = tmp_path / "x-test.jsonl"
    f.write_text(json.dumps({
        "chosen": "\n\nHuman: q1\n\nAssistant: a\n\nHuman: q2\n\nAssistant: good",
        "rejected": "\n\nHuman: q1\n\nAssistant: b\n\nHuman: q2\n\nAssistant: bad",
    }) + "\n")
    (p,) = _pairs(read_pairs(f))
    assert p.context_differs
    assert p.chosen_response == "good" and p.rejected_response == "bad"
    assert p.subset == "x" and p.split == "test"


def test_bad_lines_named_and_good_rows_kept(tmp_path):
    good = {"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"}
    lines = [
        json.dumps(good).encode(),
        b'{"chosen": "broken',                                              # 2 malformed json
        json.dumps({"chosen": good["chosen"]}).encode(),                    # 3 missing field
        json.dumps({"chosen": "", "rejected": good["rejected"]}).encode(),  # 4 empty text
        json.dumps({"chosen": "no turns here", "rejected": "nor here"}).encode(),  # 5 no assistant
        b'{"chosen": "\xff\xfe", "rejected": "x"}',                         # 6 invalid utf-8
        json.dumps({"chosen": good["chosen"], "rejected": good["chosen"]}).encode(),  # 7 identical
        json.dumps({"chosen": good["chosen"] + "!", "rejected": good["rejected"]}).encode(),
    ]
    f = tmp_path / "bad-test.jsonl.gz"
    with gzip.open(f, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    items = list(read_pairs(f))
    kinds = {(i.line, i.kind) for i in _issues(items)}
    assert kinds == {(2, "malformed_json"), (3, "missing_field"), (4, "empty_text"), (5, "no_assistant"),
                     (6, "invalid_utf8"), (7, "identical")}
    assert [p.source_row for p in _pairs(items)] == [1, 7, 8]

    with open_study(tmp_path / "s.duckdb") as st:
        res = ingest(st, str(f))
        assert res.n_added == 3
        assert st.scalar("SELECT count(*) FROM ingest_issues WHERE fatal") == 5
        assert st.scalar("SELECT count(*) FROM pairs WHERE identical") == 1
        assert ingest(st, str(f)).n_added == 0  # idempotent
        assert st.scalar("SELECT count(*) FROM pairs") == 3

    with open_study(tmp_path / "strict.duckdb") as st:
        with pytest.raises(InputError) as ei:
            ingest(st, str(f), strict=True)
        assert "bad-test.jsonl.gz:2" in ei.value.message
        assert st.scalar("SELECT count(*) FROM pairs") == 1  # the good line before it is kept


def test_generic_csv_with_mapping_and_prompt(tmp_path):
    f = tmp_path / "prefs.csv"
    f.write_text('question,response_a,response_b\n"What is 2+2?","4","5"\n"Hi","Hello!",""\n')
    items = list(read_pairs(f, ReadOptions(mapping={"prompt": "question", "chosen": "response_a",
                                                    "rejected": "response_b"})))
    pairs = _pairs(items)
    assert pairs[0].chosen_context == "\n\nHuman: What is 2+2?"
    assert pairs[0].chosen_response == "4" and pairs[0].rejected_response == "5"
    assert pairs[0].chosen_text == "\n\nHuman: What is 2+2?\n\nAssistant: 4"


def test_chat_message_lists_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = {
        "chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "No."}],
    }
    f = tmp_path / "uf-train.jsonl"
    f.write_text(json.dumps(row) + "\n")
    (p,) = _pairs(read_pairs(f))
    assert p.chosen_context == "\n\nHuman: Name a colour." and p.chosen_response == "Blue."
    pf = tmp_path / "uf-train.parquet"
    pq.write_table(pa.Table.from_pylist([row]), pf)
    (q,) = _pairs(read_pairs(pf))
    assert q.chosen_text == p.chosen_text and q.split == "train"


def test_a_json_array_file_and_a_folder(tmp_path):
    """A pretty-printed JSON array in a .json file is read as records (it was read as JSON lines: every
    line malformed); a bad record is reported by its number; a folder is named as a folder."""
    from analysis.datasets.readers import Issue

    rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: yes {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: no"}
            for i in range(4)]
    rows.insert(2, {"chosen": "only one side"})
    f = tmp_path / "prefs.json"
    f.write_text(json.dumps(rows, indent=2))
    items = list(read_pairs(f))
    pairs, issues = _pairs(items), [i for i in items if isinstance(i, Issue)]
    assert [p.chosen_response for p in pairs] == ["yes 0", "yes 1", "yes 2", "yes 3"]
    assert [(i.line, i.kind) for i in issues] == [(3, "missing_field")]
    (bad := tmp_path / "broken.json").write_text('[{"chosen": "a",\n  "rejected": }]')
    (issue,) = list(read_pairs(bad))
    assert issue.kind == "malformed_json" and issue.line == 2 and "JSON array" in issue.message
    with pytest.raises(InputError, match="is a folder"):
        list(read_pairs(tmp_path))


def test_hf_without_datasets_is_clear(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *a, **k):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(InputError) as ei:
        list(read_pairs("hf:Anthropic/hh-rlhf"))
    assert "datasets" in ei.value.message


def test_sample_ingest_counts(tmp_path):
    with open_study(tmp_path / "s.duckdb") as st:
        for f in HH_FILES:
            ingest(st, str(f))
        assert st.scalar("SELECT count(*) FROM pairs") == 8552
        assert st.scalar("SELECT count(*) FROM texts") == 17104
        assert st.scalar("SELECT count(*) FROM pairs WHERE identical") == 36
        added = sum(ingest(st, str(f)).n_added for f in HH_FILES)
        assert added == 0


def test_hf_reader_on_local_dataset_folder(tmp_path, monkeypatch):
    """The hf: path goes through datasets.load_dataset; a local folder needs no network."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    folder = tmp_path / "harmless"
    folder.mkdir()
    with gzip.open(HH_FILES[0], "rt") as fh:
        lines = [next(fh) for _ in range(5)]
    (folder / "test.jsonl").write_text("".join(lines))
    items = list(read_pairs(f"hf:{folder}", ReadOptions(hf_split="test", subset="harmless-base")))
    pairs = _pairs(items)
    assert len(pairs) == 5 and pairs[0].subset == "harmless-base" and pairs[0].split == "test"
    assert pairs[0].source_row == 1
    # same content as the JSONL reader gives for those rows
    direct = _pairs(read_pairs(HH_FILES[0], ReadOptions(limit=5)))
    assert [p.chosen_response for p in pairs] == [p.chosen_response for p in direct]


def test_hf_unreachable_is_clear(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(InputError) as ei:
        list(read_pairs("hf:Anthropic/hh-rlhf", ReadOptions(hf_data_dir="harmless-base")))
    assert "hf:Anthropic/hh-rlhf" in ei.value.message and "harmless-base" in ei.value.message


@pytest.mark.parametrize("path", ["records", "columnar"])
def test_study_survives_killed_ingest(tmp_path, path, monkeypatch):
    """SIGKILL in the middle of an ingest: the study opens, committed chunks are whole, a rerun completes.
    ``records``: --limit keeps the columnar pass out (chunks of 2,000 records); ``columnar``: batches of
    BATCH_ROWS written by the writer thread."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    batch_rows = 20_000  # the columnar batch, set below for the killed process (and the one-batch study)
    monkeypatch.setattr("analysis.datasets.columnar.BATCH_ROWS", batch_rows)
    total = 60_000 if path == "records" else 3 * batch_rows - 1000
    chunk = 2000 if path == "records" else batch_rows
    big = tmp_path / "big-train.jsonl"
    with open(big, "w") as out:
        for i in range(total):
            out.write(json.dumps({"chosen": f"\n\nHuman: q{i}\n\nAssistant: yes {i}",
                                  "rejected": f"\n\nHuman: q{i}\n\nAssistant: no {i}"}) + "\n")
    study = tmp_path / "k.duckdb"
    threshold = 3_000_000
    if path == "columnar":  # DuckDB writes a big batch's blocks before its commit: wait for 1.5 batches
        one = tmp_path / "one-train.jsonl"
        one.write_text("".join(big.open().readlines()[:chunk]))
        with open_study(tmp_path / "one.duckdb") as st:
            ingest(st, str(one))
        threshold = int(1.5 * sum(f.stat().st_size for f in tmp_path.glob("one.duckdb*")))
    env = dict(os.environ, PYTHONPATH=str(ROOT), RMTUI_INGEST_BATCH_ROWS=str(batch_rows))
    limit = ["--limit", str(total)] if path == "records" else []
    proc = subprocess.Popen([sys.executable, "-m", "rmtui", "ingest", str(big), "--study", str(study), *limit],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until at least one chunk is committed (the WAL or the file grows), then kill hard
    deadline = time.time() + 60
    while time.time() < deadline:
        wal = study.with_name(study.name + ".wal")
        size = (study.stat().st_size if study.exists() else 0) + (wal.stat().st_size if wal.exists() else 0)
        if size > threshold:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with open_study(study) as st:
        n = st.scalar("SELECT count(*) FROM pairs")
        assert n < total, "the job finished before it was killed; make the file bigger"
        assert n > 0 and n % chunk == 0, n  # whole chunks only, at least one
        assert st.scalar("SELECT count(*) FROM texts") == 2 * n
        res = ingest(st, str(big))
        assert res.n_added == total - n
        assert st.scalar("SELECT count(*) FROM pairs") == total


def test_study_refuses_what_is_not_a_study(tmp_path):
    """A dataset passed as the study, another DuckDB database, a mistyped path: clear errors naming
    the file, and nothing written to any of them (rmtui added its ~24 tables to the database and
    made an empty study at the mistyped path)."""
    import duckdb
    from typer.testing import CliRunner

    from analysis.errors import StudyError
    from rmtui.cli import app

    data = next(f for f in HH_FILES if f.exists())
    before = data.read_bytes()
    with pytest.raises(StudyError, match="not a DuckDB study file") as e:
        open_study(data)
    assert str(data) in str(e.value) and data.read_bytes() == before
    other = tmp_path / "sales.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE sales (region VARCHAR, amount INT)")
    with pytest.raises(StudyError, match=r"not an rmtui study \(it has the tables sales\)"):
        open_study(other)
    with duckdb.connect(str(other), read_only=True) as con:
        assert [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()] == ["sales"]
    empty = tmp_path / "new.duckdb"
    empty.touch()  # an empty file is a new study
    with open_study(empty) as st:
        assert st.scalar("SELECT count(*) FROM pairs") == 0
    missing = tmp_path / "typo.duckdb"
    for args in (["score", "--model", "embedded:pre", "--role", "pre"], ["featurize", "-l", "heuristic"],
                 ["fit"], ["rewrite", "--rewriter", "rules"]):
        r = CliRunner().invoke(app, [args[0], "--study", str(missing), *args[1:]])
        assert r.exit_code == 1, (args, r.output)
        assert not missing.exists(), args


def test_ingest_cli_exits_nonzero_when_no_row_is_good(tmp_path):
    from typer.testing import CliRunner

    from rmtui.cli import app

    bad = tmp_path / "bad-test.jsonl"
    bad.write_text('{"chosen": "x"}\nnot json\n')
    r = CliRunner().invoke(app, ["ingest", str(bad), "--study", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 1 and "skipped 2 bad rows" in r.output, r.output
    good = tmp_path / "good-test.jsonl"
    good.write_text(json.dumps({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"})
                    + "\nnot json\n")
    r = CliRunner().invoke(app, ["ingest", str(good), "--study", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 0 and "added 1" in r.output, r.output
