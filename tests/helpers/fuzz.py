"""Strategies and checks for the property tests of the readers and the sanitizer (issue 19, item 13).

Shared by tests/analysis/datasets/test_fuzz.py (a few hundred examples in CI) and benchmarks/fuzz_readers.py (tens of
thousands). Each ``check_*`` builds its input in a temporary folder, reads it and asserts the
properties; it returns counts (pairs, issues) for the benchmark's report.

Properties:
- reading any input raises nothing but rmtui's own error type (RmtuiError);
- every good record of the input comes out as exactly one Pair, at its line;
- every bad record is named: one fatal Issue at its line (file, line, kind);
- ingesting stores each distinct good pair once, and a second ingest adds nothing;
- visible() leaves no control character but newline and tab, is idempotent, and leaves clean text as it is.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import strategies as st

from analysis.datasets.readers import Issue, Pair, ReadOptions, parse_mapping, read_pairs
from analysis.errors import RmtuiError
from analysis.textsafe import UNSAFE, visible, visible_line

# -- strategies ------------------------------------------------------------------------------------

# any text, control characters and bidi overrides included (they are what hostile data holds)
any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


def _ok_part(s: str) -> bool:
    return bool(s.strip()) and "Human:" not in s and "Assistant:" not in s and "System:" not in s


part = any_text.filter(_ok_part)


@st.composite
def good_record(draw) -> dict:
    p, a, b = draw(part), draw(part), draw(part)
    return {"chosen": f"\n\nHuman: {p}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {p}\n\nAssistant: {b}"}


json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_value = st.recursive(json_scalar, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(any_text, kids, max_size=4), max_leaves=12)
# a JSON object that is no record: keys no reader knows ("zz_" prefix), or a record missing a side
bad_object = (st.dictionaries(any_text.map(lambda k: "zz_" + k), json_value, max_size=4)
              | good_record().map(lambda r: {"chosen": r["chosen"]}))
bad_json_value = json_value.filter(lambda v: not isinstance(v, dict)) | bad_object


def _not_json(s: str) -> bool:
    try:
        json.loads(s)
    except (ValueError, RecursionError):
        return True
    return False


# one line of a JSONL file: ("good", record) | ("bad", text of the line) | ("bytes", raw bytes)
jsonl_line = st.one_of(
    good_record().map(lambda r: ("good", json.dumps(r, ensure_ascii=False))),
    bad_json_value.map(lambda v: ("bad", json.dumps(v, ensure_ascii=False))),
    any_text.filter(lambda s: s.strip() and "\n" not in s and "\r" not in s and _not_json(s)).map(lambda s: ("bad", s)),
    st.binary(min_size=1, max_size=40).filter(lambda b: b.strip() and b"\n" not in b and b"\r" not in b)
    .map(lambda b: ("bytes", b)),
    st.integers(1_000, 60_000).map(lambda n: ("bad", "[" * n + "]" * n)),  # nested too deeply
)

identifier = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True)


# -- checks ----------------------------------------------------------------------------------------
def _read(path: Path, opts: ReadOptions | None = None) -> list:
    """Read everything; only RmtuiError may come out (returned as a one-item list)."""
    try:
        return list(read_pairs(path, opts))
    except RmtuiError as e:
        return [e]


def check_jsonl(lines: list[tuple[str, object]], gz: bool = False) -> tuple[int, int]:
    """Good lines -> one Pair each at their line; bad ones -> one fatal Issue each at their line."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("fuzz-train.jsonl.gz" if gz else "fuzz-train.jsonl")
        raw = b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for _, x in lines)
        path.write_bytes(gzip.compress(raw) if gz else raw)
        items = _read(path)
    assert not any(isinstance(i, RmtuiError) for i in items), items
    pairs = Counter(i.source_row if hasattr(i, "source_row") else i.line for i in items if isinstance(i, Pair))
    fatal = Counter(i.line for i in items if isinstance(i, Issue) and i.fatal)
    for n, (kind, x) in enumerate(lines, start=1):
        if kind == "good":
            assert pairs[n] == 1 and fatal[n] == 0, (n, x, items)
        elif kind == "bad":
            assert pairs[n] == 0 and fatal[n] == 1, (n, x, items)
        else:  # random bytes: never a pair, named unless it is valid JSON of a record (it never is)
            assert pairs[n] == 0 and fatal[n] == 1, (n, x, items)
    for i in items:
        if isinstance(i, Issue):
            assert i.source.endswith("fuzz-train.jsonl.gz" if gz else "fuzz-train.jsonl") and i.kind and i.message
    return sum(pairs.values()), sum(fatal.values())


def check_random_file(data: bytes, suffix: str) -> tuple[int, int]:
    """Any bytes under any reader's name: Pairs and Issues, or one RmtuiError; never another exception."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz-train{suffix}"
        path.write_bytes(data)
        items = _read(path)
    n_pairs = sum(isinstance(i, Pair) for i in items)
    return n_pairs, len(items) - n_pairs


def check_truncated_gz(records: list[dict], cut: float) -> tuple[int, int]:
    """A .gz cut anywhere: the pairs before the cut come out once each, then one issue naming the line."""
    raw = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    data = gzip.compress(raw)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cut-train.jsonl.gz"
        path.write_bytes(data[: max(1, int(len(data) * cut))])
        items = _read(path)
    assert not any(isinstance(i, RmtuiError) for i in items)
    pairs = [i for i in items if isinstance(i, Pair)]
    assert len(pairs) <= len(records)
    assert [p.source_row for p in pairs] == list(range(1, len(pairs) + 1))
    fatal = [i for i in items if isinstance(i, Issue) and i.fatal]
    if len(pairs) < len(records):
        assert fatal and fatal[-1].line == len(pairs) + 1 and fatal[-1].kind in ("truncated", "not_gzip",
                                                                                 "malformed_json")
    return len(pairs), len(fatal)


def check_csv_map(names: list[str], records: list[dict], fmt: str) -> tuple[int, int]:
    """Random column names, mapped with --map chosen=A,rejected=B: every row one Pair."""
    a, b, *extra = names
    rows = [{a: r["chosen"], b: r["rejected"], **{e: "x" for e in extra}} for r in records]
    with tempfile.TemporaryDirectory() as d:
        if fmt == "csv":
            path = Path(d) / "fuzz-train.csv"
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=names)
            w.writeheader()
            w.writerows(rows)
            path.write_text(buf.getvalue(), encoding="utf-8")
        elif fmt == "jsonl":
            path = Path(d) / "fuzz-train.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            path = Path(d) / "fuzz-train.parquet"
            pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({n: pa.array([], pa.string())
                                                                               for n in names}), path)
        mapping = parse_mapping([f"chosen={a},rejected={b}"])
        items = _read(path, ReadOptions(mapping=mapping))
        # a map naming a column the file lacks: every row named, or one error; nothing else
        wrong = _read(path, ReadOptions(mapping={"chosen": "zz_missing", "rejected": b}))
    assert not any(isinstance(i, RmtuiError) for i in items), items
    pairs = [i for i in items if isinstance(i, Pair)]
    assert len(pairs) == len(records), (names, records, items)
    if not any(isinstance(i, RmtuiError) for i in wrong):
        assert not any(isinstance(i, Pair) for i in wrong)
        assert sum(isinstance(i, Issue) and i.fatal for i in wrong) == len(records)
    return len(pairs), 0


def check_ingest_once(lines: list[tuple[str, object]]) -> tuple[int, int]:
    """Into a real study: each distinct good pair stored once; a second ingest adds nothing."""
    from analysis.datasets.ingest import ingest
    from analysis.store import open_study

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz-train.jsonl"
        path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for _, x in lines))
        expected = {i.pair_id for i in read_pairs(path) if isinstance(i, Pair)}
        with open_study(Path(d) / "s.duckdb") as study:
            r1 = ingest(study, str(path))
            r2 = ingest(study, str(path))
            n = study.scalar("SELECT count(*) FROM pairs")
            ids = set(study.df("SELECT pair_id FROM pairs")["pair_id"])
    assert n == len(expected) == len(ids) and ids == expected
    assert r1.n_added == len(expected) and r2.n_added == 0
    assert len(r1.skipped) == sum(k != "good" for k, _ in lines)
    return n, len(r1.skipped)


def check_visible(s: str) -> None:
    v = visible(s)
    assert not UNSAFE.search(v.replace("\n", "").replace("\t", "")), repr(v)
    assert visible(v) == v  # idempotent: what it produces is already safe
    if not UNSAFE.search(s):
        assert v == s
    line = visible_line(s)
    assert not UNSAFE.search(line) and "\n" not in line
    assert visible_line(line) == line


def check_console(s: str) -> None:
    """Through the CLI console, as a str and inside a table: no ESC reaches the output, nothing parsed."""
    from rich.table import Table

    from rmtui.cli.base import SafeConsole

    out = io.StringIO()
    c = SafeConsole(file=out, width=10_000, force_terminal=False, color_system=None)
    c.print(s, soft_wrap=True)
    t = Table()
    t.add_column(s[:20] or "x")
    t.add_row(s)
    c.print(t)
    text = out.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text, repr(text)
    first = "".join(visible(s).split("\n")[0].split())  # shown literally (tabs expand, so compare sans spaces)
    assert first in "".join(text.split()), (first, text)
