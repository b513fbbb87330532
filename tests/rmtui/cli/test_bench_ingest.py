"""``rmtui bench ingest`` at a small size: every stage runs, adds every row, and prints its rate."""

from __future__ import annotations

import re

from tests.helpers.cli import run_cli


def test_bench_ingest_prints_each_source_against_the_record_path():
    r = run_cli("bench", "ingest", "--n", "3000", "--baseline-n", "1000")
    assert r.code == 0, r.all
    rows = {m.group(1): m.groups()[1:] for m in
            re.finditer(r"^(jsonl|parquet|sql|record path)\s+│\s+([\d,]+)\s+│\s+([\d.]+)\s+│\s+([\d,]+)\s+│"
                        r"\s+([\d.]+)\s+│\s+([\d,]+|-)\s+│\s+([\d,]+)\s+│\s+([\d.]+)x", r.out, re.M)}
    assert set(rows) == {"jsonl", "parquet", "sql", "record path"}, r.out
    assert rows["jsonl"][0] == "3,000" and rows["record path"][0] == "1,000"
    assert all(int(v[2].replace(",", "")) > 0 and int(v[5].replace(",", "")) > 0 for v in rows.values())
    assert rows["record path"][6] == "1.0"
    assert "rows added" not in r.out  # every stage added every row
    assert re.search(r"slowest source \w+: [\d,]+ rows/s against the target of 50,000 rows/s: (pass|FAIL)", r.out)
