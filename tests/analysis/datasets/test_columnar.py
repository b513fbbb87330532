"""The columnar ingest stores what the record path stores, row for row and column for column.

Each source is ingested twice into fresh studies: once with the columnar pass (the default) and once
with ``columnar=False`` (every record through the per-row readers). The pairs, texts and ingest issues
must be equal, and so must the counts ingest reports. Sources are small, read in batches of 64 so
that several batches (and the per-row replay of a batch's odd records) are exercised. Each source
also checks the columnar pass really took its records (else the comparison would be empty).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas.testing as pdt
import pytest

from analysis.datasets import columnar
from analysis.datasets.ingest import ingest
from analysis.datasets.readers import ReadOptions
from analysis.datasets.shapes import parse_map
from analysis.store import open_study

N = 300
SAMPLE = Path(__file__).resolve().parents[3] / "sample_data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(columnar, "BATCH_ROWS", 64)


def _ab_records(n: int = N, labels=("model_a", "model_b", "tie")) -> list[dict]:
    return [{"prompt": f"question {i}: how does item {i % 7} work?", "response_a": f"answer A to {i}.",
             "response_b": f"a different answer B to {i}", "winner": labels[i % 3], "extra": i}
            for i in range(n)]


def _perturb(recs: list[dict]) -> list[dict]:
    """Records the columnar pass must hand to the record path, one kind every few rows."""
    recs = [dict(r) for r in recs]
    odd = [
        lambda r: r.update(response_a=None),                                  # a null side
        lambda r: r.update(response_b="   "),                                 # an empty response
        lambda r: r.update(response_b=r["response_a"]),                       # identical responses
        lambda r: r.update(response_a="Human: hi\n\nAssistant: a whole transcript"),
        lambda r: r.update(response_a='[{"role": "assistant", "content": "chat list"}]'),
        lambda r: r.update(response_b="[not json] but bracketed]"),           # looks like a list, is text
        lambda r: r.update(winner="model_c"),                                 # a label the mapping lacks
        lambda r: r.update(winner=None),                                      # no label
        lambda r: r.update(winner="  "),
        lambda r: r.update(prompt="Human: a prompt that is a transcript\n\nAssistant:"),
        lambda r: r.update(prompt="   "),                                     # a blank prompt
        lambda r: r.update(prompt="\n\nHuman: only the human turn"),
        lambda r: r.update(prompt=None),
        lambda r: r.update(response_a="Assistant: led by the marker"),
        lambda r: r.update(prompt="  padded prompt  \n", response_a="  padded answer \n"),
        lambda r: r.update(response_a="emoji \U0001F600 and \u2028 separators"),
    ]
    for k, i in enumerate(range(3, len(recs), 9)):
        odd[k % len(odd)](recs[i])
    return recs


def _jsonl(path: Path, recs: list[dict], extra_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in recs]
    for at, raw in sorted((extra_lines or {}).items(), reverse=True):
        lines.insert(at, raw)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _parquet(path: Path, recs: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(recs), path, row_group_size=50)
    return path


AB_MAP = ["prompt=prompt,a=response_a,b=response_b,label=winner"]
AB_LABEL = "a=model_a,b=model_b,tie=tie"


def _opts(kind: str) -> ReadOptions:
    if kind == "ab":
        mapping, shape = parse_map(AB_MAP, label=AB_LABEL)
        return ReadOptions(mapping=mapping, shape=shape)
    if kind == "ab-default-labels":  # the default spelling: the values are scanned first
        mapping, shape = parse_map(["prompt=prompt,a=response_a,b=response_b,label=winner"])
        return ReadOptions(mapping=mapping, shape=shape)
    if kind == "plain":
        mapping, shape = parse_map(["prompt=question,chosen=good,rejected=bad"])
        return ReadOptions(mapping=mapping, shape=shape)
    return ReadOptions()


def _both(tmp_path: Path, spec: str, kind: str, monkeypatch) -> tuple[dict, dict]:
    out = {}
    taken = []
    real = columnar._build

    def counting(*a, **k):
        r = real(*a, **k)
        taken.append(len(r[0]["pair_id"]))
        return r

    monkeypatch.setattr(columnar, "_build", counting)
    for name, col in (("columnar", True), ("records", False)):
        with open_study(tmp_path / f"{name}.duckdb") as st:
            res = ingest(st, spec, _opts(kind), columnar=col)
            pairs = st.df("SELECT * EXCLUDE (ingest_id) FROM pairs ORDER BY pair_id")
            texts = st.df("SELECT * FROM texts ORDER BY pair_id, side")
            issues = st.df("SELECT source, line, kind, message, excerpt, fatal FROM ingest_issues "
                           "ORDER BY line, kind, message")
            ingests = st.df("SELECT n_read, n_added, n_issues, status FROM ingests")
        out[name] = dict(res=(res.n_read, res.n_added, res.n_ties, res.n_split_votes, len(res.issues),
                              len(res.skipped), res.n_merged), pairs=pairs, texts=texts, issues=issues,
                         ingests=ingests)
        if name == "columnar":
            out["taken"] = sum(taken)
    return out["columnar"] | {"taken": out["taken"]}, out["records"]


def _assert_same(a: dict, b: dict) -> None:
    assert a["res"] == b["res"]
    assert a["taken"] > 0, "the columnar pass took no record: the comparison says nothing"
    for k in ("pairs", "texts", "issues", "ingests"):
        pdt.assert_frame_equal(a[k].reset_index(drop=True), b[k].reset_index(drop=True), check_dtype=False,
                               obj=k)


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet", "sql"])
def test_ab_with_label_clean_and_perturbed_is_stored_as_the_record_path_stores_it(tmp_path, monkeypatch, fmt):
    recs = _perturb(_ab_records())
    if fmt == "parquet" or fmt == "sql":
        src = _parquet(tmp_path / "ab-train.parquet", recs)
        spec = str(src) if fmt == "parquet" else f"sql:SELECT * FROM read_parquet('{src}')"
    else:
        extra = {5: "", 40: "{not json", 77: "[1, 2]", 90: '{"prompt": "p", "prompt": "twice", '
                 '"response_a": "x", "response_b": "y", "winner": "model_a"}',
                 130: '{"prompt": "lone \\ud800 surrogate", "response_a": "x", "response_b": "y", '
                      '"winner": "model_a"}',
                 200: '{"prompt": "q", "response_a": 3, "response_b": true, "winner": "model_b"}'}
        spec = str(_jsonl(tmp_path / f"ab-train.{fmt}", recs, extra))
    a, b = _both(tmp_path, spec, "ab", monkeypatch)
    _assert_same(a, b)
    assert a["res"][2] > 50 and a["res"][4] > 10  # ties and issues were there to compare


def test_default_label_spelling_scans_first_and_agrees(tmp_path, monkeypatch):
    recs = _ab_records(labels=("A", "B", "tie"))
    recs[10]["winner"] = "a"
    recs[11]["winner"] = "TIE"
    src = _parquet(tmp_path / "scan.parquet", recs)
    a, b = _both(tmp_path, str(src), "ab-default-labels", monkeypatch)
    _assert_same(a, b)


def test_integer_labels_in_jsonl_and_float_labels_in_parquet(tmp_path, monkeypatch):
    mapping, shape = parse_map(AB_MAP, label="a=0,b=1,tie=2")
    recs = _ab_records(labels=(0, 1, 2))
    recs[7]["winner"] = 5  # unknown value
    for name, src in (("int.jsonl", _jsonl(tmp_path / "int.jsonl", recs)),
                      ("float.parquet", _parquet(tmp_path / "float.parquet",
                                                 [r | {"winner": float(r["winner"])} for r in recs]))):
        got = []
        for col in (True, False):
            m, s = parse_map(AB_MAP, label="a=0,b=1,tie=2")
            with open_study(tmp_path / f"{name}-{col}.duckdb") as st:
                r = ingest(st, str(src), ReadOptions(mapping=m, shape=s), columnar=col)
                got.append(((r.n_added, r.n_ties, len(r.issues)),
                            st.df("SELECT * EXCLUDE (ingest_id) FROM pairs ORDER BY pair_id")))
        assert got[0][0] == got[1][0], name
        pdt.assert_frame_equal(got[0][1], got[1][1], obj=name)


def test_a_jsonl_with_mixed_int_and_float_labels_reads_as_the_record_path(tmp_path, monkeypatch):
    recs = _ab_records(labels=(0, 1, 2))
    for r in recs[::5]:
        r["winner"] = float(r["winner"]) + 0.0  # 1.0 beside 1: Arrow would read every value as a float
    recs[1]["winner"] = 1.5
    src = _jsonl(tmp_path / "mixed.jsonl", recs)
    got = []
    for col in (True, False):
        m, s = parse_map(AB_MAP, label="a=0,b=1,tie=2")
        with open_study(tmp_path / f"m-{col}.duckdb") as st:
            ingest(st, str(src), ReadOptions(mapping=m, shape=s), columnar=col)
            got.append(st.df("SELECT pair_id, label_raw FROM pairs ORDER BY pair_id").to_dict("list"))
    assert got[0] == got[1]


def test_plain_prompt_chosen_rejected_and_transcripts(tmp_path, monkeypatch):
    recs = [{"question": f"what is {i}?", "good": f"it is {i}", "bad": f"no idea {i}"} for i in range(N)]
    recs[4]["good"] = recs[4]["bad"]
    recs[9]["question"] = None
    a, b = _both(tmp_path, str(_jsonl(tmp_path / "plain.jsonl", recs)), "plain", monkeypatch)
    _assert_same(a, b)
    # hh-rlhf transcripts (no prompt column): the real sample's first 400 lines, one cut off
    lines = gzip.decompress(SAMPLE.read_bytes()).splitlines()[:400]
    lines[17] = lines[17].replace(b"Assistant:", b"Asistant:")
    hh = tmp_path / "harmless-base-test.jsonl"
    hh.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "hh").mkdir()
    a, b = _both(tmp_path / "hh", str(hh), "none", monkeypatch)
    _assert_same(a, b)


def test_a_cut_off_gzip_keeps_the_lines_before_the_cut_in_both_paths(tmp_path, monkeypatch):
    src = _jsonl(tmp_path / "cut.jsonl.gz", _ab_records())
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 2 // 3])
    a, b = _both(tmp_path, str(src), "ab", monkeypatch)
    _assert_same(a, b)
    assert any(a["issues"]["kind"] == "truncated")


def test_reading_again_adds_nothing_and_the_columnar_batches_are_committed(tmp_path):
    src = _parquet(tmp_path / "again.parquet", _ab_records())
    with open_study(tmp_path / "s.duckdb") as st:
        first = ingest(st, str(src), _opts("ab"))
        second = ingest(st, str(src), _opts("ab"))
        n = st.df("SELECT count(*) AS n FROM pairs")["n"][0]
    assert first.n_added == N and second.n_added == 0 and n == N


def test_a_copy_of_an_ingested_source_adds_nothing_as_in_the_record_path(tmp_path):
    """The copy's pair ids are stored already (same subset, split, rows and texts): the plain insert the
    columnar pass tries first fails, is rolled back, and the batch goes in skipping stored ids."""
    src = _parquet(tmp_path / "copy-train.parquet", _ab_records())
    (tmp_path / "other").mkdir()
    copy = tmp_path / "other" / "copy-train.parquet"
    copy.write_bytes(src.read_bytes())
    got = []
    for col in (True, False):
        with open_study(tmp_path / f"c-{col}.duckdb") as st:
            first = ingest(st, str(src), _opts("ab"), columnar=col)
            again = ingest(st, str(copy), _opts("ab"), columnar=col)
            got.append((first.n_added, again.n_read, again.n_added, st.scalar("SELECT count(*) FROM pairs"),
                        st.scalar("SELECT count(*) FROM texts")))
    assert got[0] == got[1] == (N, N, 0, N, 2 * N)
