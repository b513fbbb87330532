"""Careless input (issue 19, items 4-5): a message, never a traceback, nothing lost, no silent success."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis.datasets.readers import read_pairs, Issue, Pair
from tests.helpers.cli import run_cli


def good(i: int) -> dict:
    return {"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad {i}"}


def lines(n: int, start: int = 0) -> str:
    return "".join(json.dumps(good(i)) + "\n" for i in range(start, start + n))


@contextlib.contextmanager
def read_only_folder(d: Path):
    """A folder nobody can write in, root included (tests run as root, which ignores chmod): chattr +i."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr not available")
    r = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-i", str(d)], check=True)


def no_traceback(r) -> None:
    assert "Traceback" not in r.all and "Error:" not in r.all.replace("error:", ""), r.all


# -- item 4 ------------------------------------------------------------------------------------------
def test_deeply_nested_json_line_is_one_bad_row_and_the_next_rows_are_read(tmp_path):
    p = tmp_path / "deep-train.jsonl"
    p.write_text(lines(1) + "[" * 100_000 + "]" * 100_000 + "\n" + '{"chosen": ' + "[" * 50_000 + "\n"
                 + lines(2, start=1), encoding="utf-8")
    items = list(read_pairs(p))
    pairs = [i for i in items if isinstance(i, Pair)]
    bad = [i for i in items if isinstance(i, Issue)]
    assert len(pairs) == 3 and [b.line for b in bad] == [2, 3]
    assert all("nested too deeply" in b.message for b in bad)
    r = run_cli("ingest", p, "--study", tmp_path / "s.duckdb")
    assert r.code == 0 and "added 3" in r.out, r.all
    # and a .json array nested that deep
    a = tmp_path / "deep.json"
    a.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]", encoding="utf-8")
    items = list(read_pairs(a))
    assert len(items) == 1 and isinstance(items[0], Issue) and "nested too deeply" in items[0].message


def test_gz_that_is_not_gzip(tmp_path):
    p = tmp_path / "plain-train.jsonl.gz"
    p.write_text(lines(3), encoding="utf-8")
    r = run_cli("ingest", p, "--study", tmp_path / "s.duckdb")
    assert r.code == 1, r.all
    assert "not a gzip file" in r.out and str(p) in r.out, r.all
    assert "Traceback" not in r.all


def test_truncated_gz_keeps_the_pairs_read_and_says_where_it_ended(tmp_path):
    data = gzip.compress(lines(2000).encode())
    p = tmp_path / "cut-train.jsonl.gz"
    p.write_bytes(data[: len(data) // 2])
    study = tmp_path / "s.duckdb"
    r = run_cli("ingest", p, "--study", study)
    assert r.code == 1, r.all  # the data set is incomplete: not a success for a script
    assert "Traceback" not in r.all and "Aborted" not in r.all
    items = list(read_pairs(p))
    n = sum(isinstance(i, Pair) for i in items)
    last = items[-1]
    assert isinstance(last, Issue) and last.kind == "truncated" and last.line == n + 1
    assert 500 < n < 2000
    assert f"{p}:{n + 1}: truncated" in r.out.replace("\n", " ").replace("  ", " ") or f"{p}:{n + 1}:" in r.out
    from analysis.store import open_study

    with open_study(study, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM pairs") == n  # kept
    # a cut-off .csv.gz too
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["chosen", "rejected"])
    for i in range(2000):
        w.writerow([good(i)["chosen"], good(i)["rejected"]])
    data = gzip.compress(buf.getvalue().encode())
    c = tmp_path / "cut-train.csv.gz"
    c.write_bytes(data[: len(data) // 2])
    items = list(read_pairs(c))
    assert isinstance(items[-1], Issue) and items[-1].kind == "truncated"
    assert sum(isinstance(i, Pair) for i in items) > 500


def test_writable_study_in_a_read_only_folder(tmp_path):
    """The WAL cannot be created: the first COMMIT failed with a TransactionException traceback."""
    d = tmp_path / "ro"
    d.mkdir()
    study = d / "s.duckdb"
    src = tmp_path / "a-train.jsonl"
    src.write_text(lines(2), encoding="utf-8")
    assert run_cli("ingest", src, "--study", study).code == 0
    src2 = tmp_path / "b-train.jsonl"
    src2.write_text(lines(2, start=5), encoding="utf-8")
    with read_only_folder(d):
        r = run_cli("ingest", src2, "--study", study)
        assert r.code == 1, r.all
        assert "Traceback" not in r.all and "cannot write in this folder" in r.err and str(d) in r.err, r.all
        r = run_cli("summary", "--study", study)  # reading still works
        assert r.code == 0 and "2 pairs" in r.out, r.all


def test_wal_path_taken_by_a_folder(tmp_path):
    """Without chattr: the WAL's path is a folder, so DuckDB cannot create it."""
    study = tmp_path / "s.duckdb"
    src = tmp_path / "a-train.jsonl"
    src.write_text(lines(2), encoding="utf-8")
    assert run_cli("ingest", src, "--study", study).code == 0
    (tmp_path / "s.duckdb.wal").mkdir()
    r = run_cli("ingest", src, "--study", study)
    assert r.code == 1 and "write-ahead log" in r.err and "Traceback" not in r.all, r.all


def test_export_and_report_into_a_read_only_folder(tmp_path):
    study = tmp_path / "s.duckdb"
    src = tmp_path / "a-train.jsonl"
    src.write_text(lines(3), encoding="utf-8")
    assert run_cli("ingest", src, "--study", study).code == 0
    d = tmp_path / "out"
    d.mkdir()
    with read_only_folder(d):
        r = run_cli("export", "--study", study, "-o", d / "x.jsonl")
        assert r.code == 1 and "cannot write the export" in r.err and str(d) in r.err, r.all
        r = run_cli("report", "--study", study, "-o", d / "rep")
        assert r.code == 1 and "cannot write the report" in r.err and "Traceback" not in r.all, r.all
    assert list(d.iterdir()) == []


def test_config_not_utf8_or_a_folder(tmp_path):
    bad = tmp_path / "run.toml"
    bad.write_bytes(b'study = "s.duckdb"\n# caf\xe9\n')
    r = run_cli("run", bad)
    assert r.code == 1 and "not UTF-8" in r.err and str(bad) in r.err, r.all
    r = run_cli("run", tmp_path)
    assert r.code == 1 and "a folder, not a config file" in r.err, r.all


@pytest.mark.parametrize("args,word", [
    (["featurize", "-l", "heuristic", "--limit", "-2"], "--limit"),
    (["featurize", "-l", "heuristic", "--workers", "-4"], "--workers"),
    (["featurize", "-l", "llm", "--concurrency", "0", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m"],
     "--concurrency"),
    (["featurize", "-l", "llm", "--timeout", "-1", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m"], "--timeout"),
    (["score", "--model", "embedded:pre", "--role", "pre", "--limit", "-1"], "--limit"),
    (["fit", "--tie-tol", "-1"], "--tie-tol"),
    (["ingest", "X", "--limit", "0"], "--limit"),
    (["ingest", "X", "--limit", "-5"], "--limit"),
])
def test_bad_numbers_are_refused_before_any_work(tmp_path, args, word):
    study = tmp_path / "s.duckdb"
    src = tmp_path / "a-train.jsonl"
    src.write_text(lines(2), encoding="utf-8")
    assert run_cli("ingest", src, "--study", study).code == 0
    args = [str(src) if a == "X" else a for a in args]
    r = run_cli(*args, "--study", study)
    assert r.code == 2, r.all  # a usage error
    assert word in r.all and "Traceback" not in r.all, r.all


def test_empty_file_is_not_a_silent_success(tmp_path):
    p = tmp_path / "empty-train.jsonl"
    p.write_text("", encoding="utf-8")
    r = run_cli("ingest", p, "--study", tmp_path / "s.duckdb")
    assert r.code == 1 and "no pairs" in r.out and "holds no rows" in r.out, r.all


def test_limit_below_one_is_refused_by_the_reader(tmp_path):
    from analysis.datasets.readers import ReadOptions
    from analysis.errors import InputError

    p = tmp_path / "a-train.jsonl"
    p.write_text(lines(2), encoding="utf-8")
    for n in (0, -5):
        with pytest.raises(InputError, match="at least 1"):
            list(read_pairs(p, ReadOptions(limit=n)))


def test_fit_tie_tol_negative_in_config_and_options(tmp_path):
    from analysis.pipeline.config import parse_config
    from analysis.errors import RmtuiError
    from analysis.fit.study_fit import FitOptions

    src = tmp_path / "a-train.jsonl"
    src.write_text(lines(2), encoding="utf-8")
    with pytest.raises(RmtuiError, match=r"fit\.tie_tol.*>= 0"):
        parse_config({"study": "s.duckdb", "data": [{"source": str(src)}], "fit": {"tie_tol": -1}},
                     base_dir=tmp_path)
    with pytest.raises(RmtuiError, match="tie_tol"):
        FitOptions(tie_tol=-1)


# -- item 12 -----------------------------------------------------------------------------------------
def test_unique_prefix_of_an_enumerated_option(tmp_path):
    """`rmtui export --regime resists` was refused though the app's list shows that word."""
    from analysis.choices import resolve
    from analysis.errors import RmtuiError
    from analysis.store.browse import REGIMES

    assert resolve("--regime", "resists", REGIMES) == "resists_alignment"
    assert resolve("--regime", "GOT", REGIMES) == "got_aligned"
    assert resolve("--regime", "tie", REGIMES) == "tie"
    with pytest.raises(RmtuiError, match=r"ambiguous.*resists_alignment, reversed"):
        resolve("--regime", "re", REGIMES)
    with pytest.raises(RmtuiError, match="--regime 'bogus'"):
        resolve("--regime", "bogus", REGIMES)
    assert resolve("--format", "mark", ("jsonl", "csv", "md", "parquet"), aliases={"markdown": "md"}) == "md"


def test_export_regime_prefix_end_to_end(tmp_path):
    from analysis.datasets.synth import make_synthetic_study

    study = tmp_path / "s.duckdb"
    make_synthetic_study(study, 60, seed=3)
    r = run_cli("export", "--study", study, "--regime", "resists", "-o", tmp_path / "r.jsonl")
    assert r.code == 0 and "regime=resists_alignment" in r.out.replace("'", ""), r.all
    n = len((tmp_path / "r.jsonl").read_text().splitlines())
    assert n > 0
    r = run_cli("export", "--study", study, "--regime", "re", "-o", tmp_path / "x.jsonl")
    assert r.code == 1 and "ambiguous" in r.err and "reversed" in r.err, r.all
    r = run_cli("export", "--study", study, "--regime", "resists", "-f", "parq", "-o", tmp_path / "r.parquet")
    assert r.code == 0, r.all
