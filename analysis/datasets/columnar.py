"""Columnar ingest: the same pairs as the per-row readers, read a batch of records at a time.

JSON lines (plain or gzip), Parquet and ``--sql`` sources whose records are chosen/rejected
(with or without a prompt column) or A/B with one label column are read as Arrow record batches:
a batch's texts, ids and human labels are built in one pass over its columns and written with
:func:`analysis.store.pairs.add_pair_columns` by a writer thread while the next batch is built
(``rmtui bench ingest``: about 3x the record path's rows/s). Nothing is decided differently: a record the columnar pass cannot
vouch for (a null or non-text side, a transcript in a prompt column, a text that may be a JSON list
of chat messages, an empty or identical response, a label value the mapping does not know, ...)
goes through the per-row reader (:mod:`analysis.datasets.readers`) with its own line number and
gets exactly the pair or the issue it gets there; so does a whole batch whose columns are not
plain text (chat-message lists, numbers) or that Arrow cannot parse (malformed JSON, repeated keys,
lone surrogates). ``tests/analysis/datasets/test_columnar.py`` checks the two paths store the same
rows, column by column, on clean and on perturbed sources.

Not taken (the record path runs): ``--limit``, ``--strict``, scores, margins, several label
columns or dimensions, per-response attributes, subset/split columns, ranked lists, CSV, a JSON
array file and ``hf:`` names.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, replace
from hashlib import blake2b
from pathlib import Path
from typing import Any, Iterator

from analysis.datasets.records import ASSISTANT, HUMAN, Issue, ReadOptions

# records per batch: one DuckDB row group (a batch this big goes to the file at once, not through the log);
# two batches are in memory at a time (RMTUI_INGEST_BATCH_ROWS: fewer for less memory, slower)
BATCH_ROWS = int(os.environ.get("RMTUI_INGEST_BATCH_ROWS") or 122_880)
_MISS = object()
_SEP = "\x1f"
_AS = "\n\n" + ASSISTANT + " "
_HU = "\n\n" + HUMAN + " "
_NA = len(ASSISTANT)


@dataclass
class PairColumns:
    """A batch of pairs as columns (what ``add_pair_columns`` takes), with the counts ingest reports."""

    source: str
    pairs: dict
    texts: dict
    n_ties: int

    @property
    def n(self) -> int:
        return len(self.pairs["pair_id"])


@dataclass
class _Layout:
    mode: str             # "ab" (A/B + one label column), "plain" (a chosen/rejected Shape), "none" (no Shape)
    a: str                # the A (or chosen) column
    b: str                # the B (or rejected) column
    prompt: str | None    # the prompt column (None: the sides are whole transcripts)
    label: str | None = None
    dim: Any = None


def layout(opts: ReadOptions, *, strict: bool = False) -> _Layout | None:
    """How the columnar pass reads records under ``opts``; None where only the record path reads them."""
    if strict or opts.limit is not None:
        return None
    shape = opts.shape
    if shape is None:
        m = opts.mapping or {}
        if set(m) - {"prompt", "chosen", "rejected"}:
            return None
        return _Layout("none", m.get("chosen", "chosen"), m.get("rejected", "rejected"), m.get("prompt", "prompt"))
    if getattr(shape, "scan_only", False) or shape.attrs or shape.subset or shape.split or len(shape.prompt) > 1:
        return None
    prompt = shape.prompt[0] if shape.prompt else None
    if shape.kind == "plain":
        return _Layout("plain", shape.chosen or "chosen", shape.rejected or "rejected", prompt)
    if shape.kind != "ab" or shape.score_a or shape.score_b or shape.margin or len(shape.labels) != 1:
        return None
    (dim, cols), = shape.labels.items()
    if len(cols) != 1:
        return None
    return _Layout("ab", shape.a, shape.b, prompt, cols[0], dim)


def columnar_items(spec: str, opts: ReadOptions, *, strict: bool = False) -> Iterator | None:
    """Pairs, issues and :class:`PairColumns` of one source, in source order per batch (the per-row
    pairs and issues of a batch come before its columns); None where the columnar pass does not apply
    (then :func:`analysis.datasets.readers.read_pairs` reads the source)."""
    from analysis.datasets.readers import _looks_like_hh, _starts_with_bracket, detect_format, subset_split_from_name

    lay = layout(opts, strict=strict)
    if lay is None:
        return None
    if spec.startswith("sql:"):
        subset = opts.subset or "sql"
        return _run(_sql_units(spec[4:]), "sql", opts, lay, subset, opts.split or "unknown", subset)
    try:
        fmt = opts.fmt or detect_format(spec)
    except Exception:  # the record path says what is wrong with the name
        return None
    path = Path(spec)
    if fmt not in ("hh", "jsonl", "parquet") or not path.is_file():
        return None
    if fmt != "parquet" and path.name.lower().endswith((".json", ".json.gz")) and _starts_with_bracket(path):
        return None
    subset_guess, split_guess = subset_split_from_name(path)
    subset = opts.subset or subset_guess
    split = opts.split or split_guess
    dataset = "hh-rlhf" if fmt == "hh" or _looks_like_hh(path) else subset
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq

            pq.ParquetFile(path)
        except Exception:  # the record path reports a broken file
            return None
        return _run(lambda: _parquet_units(path), str(path), opts, lay, subset, split, dataset)
    return _run(lambda: _jsonl_units(path, lay), str(path), opts, lay, subset, split, dataset)


# ---------------------------------------------------------------------------------------------
# units: (batch or None, the per-row replay of record k of the unit)


@dataclass
class _Unit:
    batch: Any                 # an Arrow table/record batch, or None: every record goes through the record path
    n: int                     # records in the unit
    first_row: int             # source_row of record 0 (frames: consecutive rows)
    lines: list | None = None  # JSON lines: the raw lines and their line numbers
    linenos: list | None = None
    issue: Issue | None = None  # a reading problem after the unit (a cut-off .gz)
    nan_to_none: bool = False  # the SQL path's records: NaN floats read as None


def _parquet_units(path: Path) -> Iterator[_Unit]:
    import pyarrow.parquet as pq

    from analysis.errors import InputError

    row = 1
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield _Unit(batch, batch.num_rows, row)
            row += batch.num_rows
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for broken files
        raise InputError(f"{path}: cannot read Parquet: {e}", "Bad input") from e


def _sql_units(sql: str):
    def units() -> Iterator[_Unit]:
        from analysis.store.sources import sql_batches

        row = 1
        for batch in sql_batches(sql, BATCH_ROWS):
            yield _Unit(batch, batch.num_rows, row, nan_to_none=True)
            row += batch.num_rows
    return units


def _jsonl_units(path: Path, lay: _Layout) -> Iterator[_Unit]:
    from analysis.datasets.readers import _guarded_lines, _open_bytes

    src = str(path)
    lines: list[bytes] = []
    linenos: list[int] = []
    with _open_bytes(path) as fh:
        for lineno, raw in enumerate(_guarded_lines(fh, src), start=1):
            if isinstance(raw, Issue):
                yield _json_unit(lines, linenos, lay, raw)
                return
            if not raw.strip():
                continue
            lines.append(raw)
            linenos.append(lineno)
            if len(lines) >= BATCH_ROWS:
                yield _json_unit(lines, linenos, lay)
                lines, linenos = [], []
    if lines:
        yield _json_unit(lines, linenos, lay)


def _json_unit(lines: list[bytes], linenos: list[int], lay: _Layout, issue: Issue | None = None) -> _Unit:
    import pyarrow as pa
    import pyarrow.json as pj

    unit = _Unit(None, len(lines), 0, lines, linenos, issue)
    if not lines or lines[0].startswith(b"\xef\xbb\xbf"):  # a BOM: json.loads refuses the line, Arrow reads it
        return unit
    data = b"".join(x if x.endswith(b"\n") else x + b"\n" for x in lines)
    # the sides as text (Arrow would read "2024-01-01" as a timestamp; a number there fails the batch). Not
    # the prompt: a column named in a schema is there, all nulls, where no line has it, and a missing
    # prompt means transcripts where a null one does not
    schema = pa.schema([(c, pa.string()) for c in dict.fromkeys((lay.a, lay.b))])
    for block in (1 << 20, len(data) + 1):  # a line longer than a block: once more as one block
        try:
            table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=block),
                                 parse_options=pj.ParseOptions(explicit_schema=schema,
                                                               unexpected_field_behavior="infer"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            continue
        if table.num_rows == len(lines):
            unit.batch = table
        break
    return unit


# ---------------------------------------------------------------------------------------------
# the pass


def _is_text(t) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _label_ok(t, json: bool) -> bool:
    import pyarrow as pa

    if _is_text(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
        return True
    # JSON: a column of 1 and 1.5 reads 1 as 1.0 (its label_raw would differ from json.loads's "1")
    return not json and pa.types.is_floating(t)


def _run(units_of, src: str, opts: ReadOptions, lay: _Layout, subset: str, split: str, dataset: str) -> Iterator:
    shape = opts.shape
    if shape is not None and shape.needs_scan():
        from analysis.datasets.shape_pairs import LabelScan

        scan = replace(opts, shape=LabelScan(shape))
        for unit in units_of():
            if unit.batch is not None and lay.label in unit.batch.schema.names \
                    and _label_ok(unit.batch.schema.field(lay.label).type, unit.lines is not None):
                for v, k in Counter(unit.batch.column(lay.label).to_pylist()).items():
                    shape.observe_value(lay.label, v, k)
            else:
                for _ in _replay(unit, range(unit.n), src, scan, subset, split, dataset):
                    pass
        shape.resolve(src)
    for unit in units_of():
        cols = _columns(unit, lay, shape) if unit.batch is not None else None
        if cols is None:
            yield from _replay(unit, range(unit.n), src, opts, subset, split, dataset)
        else:
            out, slow, ties = _build(unit, lay, shape, cols, src, subset, split, dataset)
            yield from _replay(unit, slow, src, opts, subset, split, dataset)
            if out["pair_id"]:
                yield PairColumns(src, out, _texts(out), ties)
        if unit.issue is not None:
            yield unit.issue


def _replay(unit: _Unit, rows, src: str, opts: ReadOptions, subset: str, split: str, dataset: str) -> Iterator:
    """Records ``rows`` of the unit through the record path: the pairs and issues it gives them."""
    from analysis.datasets.readers import _row, jsonl_line

    rows = list(rows)
    if not rows:
        return
    if unit.lines is not None:
        for k in rows:
            yield from jsonl_line(unit.lines[k], src, unit.linenos[k], opts, subset, split, dataset)
        return
    import pyarrow as pa

    records = unit.batch.take(pa.array(rows, type=pa.int64())).to_pylist()
    for k, rec in zip(rows, records):
        if unit.nan_to_none:
            for key, v in rec.items():
                if isinstance(v, float) and v != v:
                    rec[key] = None
        yield from _row(rec, src, unit.first_row + k, opts, subset, split, dataset, str(rec)[:200])


def _columns(unit: _Unit, lay: _Layout, shape):
    """The unit's side, prompt and label columns as lists; None when a column is not plain text
    (or a label of a kind the pass reads) or is missing (the record path says so, record by record)."""
    sch = unit.batch.schema
    names = set(sch.names)
    for c in (lay.a, lay.b):
        if c not in names or not _is_text(sch.field(c).type):
            return None
    prompt = None
    if lay.prompt is not None and (lay.prompt in names or lay.mode != "none"):
        if lay.prompt not in names or not _is_text(sch.field(lay.prompt).type):
            return None
        prompt = unit.batch.column(lay.prompt).to_pylist()
    label = None
    if lay.mode == "ab":
        if lay.label not in names or not _label_ok(sch.field(lay.label).type, unit.lines is not None):
            return None
        label = unit.batch.column(lay.label).to_pylist()
    return unit.batch.column(lay.a).to_pylist(), unit.batch.column(lay.b).to_pylist(), prompt, label


def _label_table(values, shape, col: str) -> dict:
    """Distinct label value -> (class, label_raw); _MISS-free values the mapping does not know are left
    out (their records go through the record path, which reports them)."""
    from analysis.datasets.shapes import RowError, _missing

    out = {}
    for v in set(values):
        if v is None or _missing(v):
            continue
        try:
            out[v] = (shape.classify(v, col), str(v)[:200])
        except RowError:
            continue
    return out


def _side(s: str) -> str | None:
    """A side given with a prompt: its response, or None where the record path must decide
    (a transcript, a possible JSON chat list, an empty text, an "Assistant:"-led text)."""
    st = s.strip()
    if not st or (st[0] == "[" and st[-1] == "]") or st.startswith(HUMAN) or st.startswith(ASSISTANT) \
            or (ASSISTANT in s and HUMAN in s):
        return None
    return st


def _transcript(s: str) -> tuple[str, str] | None:
    """A whole transcript cut at its last "Assistant:"; None where the record path must decide."""
    st = s.strip()
    if not st or (st[0] == "[" and st[-1] == "]"):
        return None
    i = s.rfind(ASSISTANT)
    if i < 0:
        return None
    r = s[i + _NA:].strip()
    if not r:
        return None
    return s[:i].rstrip(), r


def _build(unit: _Unit, lay: _Layout, shape, cols, src: str, subset: str, split: str, dataset: str):
    A, B, P, L = cols
    n = unit.n
    lut = _label_table(L, shape, lay.label) if L is not None else None
    first = unit.first_row
    linenos = unit.linenos
    out = {k: [] for k in ("pair_id", "source_row", "context", "chosen_response", "rejected_response",
                           "chosen_text", "rejected_text", "chosen_text_id", "rejected_text_id",
                           "rejected_context", "context_differs", "preference", "human_tie", "a_is_chosen",
                           "label_raw", "votes_a", "votes_b", "votes_tie")}
    o_pid, o_row, o_ctx, o_cr, o_rr = (out[k] for k in ("pair_id", "source_row", "context", "chosen_response",
                                                          "rejected_response"))
    o_ct, o_rt, o_cid, o_rid, o_rctx, o_diff = (out[k] for k in ("chosen_text", "rejected_text", "chosen_text_id",
                                                                 "rejected_text_id", "rejected_context",
                                                                 "context_differs"))
    o_pref, o_tie, o_ach, o_raw = (out[k] for k in ("preference", "human_tie", "a_is_chosen", "label_raw"))
    o_va, o_vb, o_vt = out["votes_a"], out["votes_b"], out["votes_tie"]
    slow: list[int] = []
    ties = 0
    head = "pair" + _SEP + subset + _SEP + split + _SEP
    mode = lay.mode
    for k in range(n):
        a, b = A[k], B[k]
        if a is None or b is None:
            slow.append(k)
            continue
        if L is not None:
            got = lut.get(L[k], _MISS)
            if got is _MISS:
                slow.append(k)
                continue
            cls, raw = got
            if cls == "b":
                a, b = b, a
        if P is not None:
            p = P[k]
            if p is None:
                slow.append(k)
                continue
            ps = p.strip()
            if not ps or (ps[0] == "[" and ps[-1] == "]") or ASSISTANT in p or HUMAN in p:
                slow.append(k)
                continue
            cr, rr = _side(a), _side(b)
            if cr is None or rr is None or cr == rr:
                slow.append(k)
                continue
            cc = rc = _HU + ps
        else:
            ca, cb = _transcript(a), _transcript(b)
            if ca is None or cb is None:
                slow.append(k)
                continue
            (cc, cr), (rc, rr) = ca, cb
            if cc == rc and cr == rr:
                slow.append(k)
                continue
        ct = cc + _AS + cr
        rt = rc + _AS + rr
        row = first + k if linenos is None else linenos[k]
        o_pid.append(blake2b((head + str(row) + _SEP + ct + _SEP + rt).encode("utf-8", "surrogatepass"),
                             digest_size=10).hexdigest())
        o_cid.append(blake2b(("text" + _SEP + cc + _SEP + cr).encode("utf-8", "surrogatepass"),
                             digest_size=10).hexdigest())
        o_rid.append(blake2b(("text" + _SEP + rc + _SEP + rr).encode("utf-8", "surrogatepass"),
                             digest_size=10).hexdigest())
        o_row.append(row)
        o_ctx.append(cc)
        o_rctx.append(rc)
        o_diff.append(cc != rc)
        o_cr.append(cr)
        o_rr.append(rr)
        o_ct.append(ct)
        o_rt.append(rt)
        if mode == "ab":
            tie = cls == "tie"
            ties += tie
            o_pref.append(cls)
            o_tie.append(tie)
            o_ach.append(cls != "b")
            o_raw.append(raw)
            o_va.append(int(cls == "a"))
            o_vb.append(int(cls == "b"))
            o_vt.append(int(tie))
    m = len(o_pid)
    const = {"dataset": dataset, "subset": subset, "split": split, "source": src, "identical": False,
             "dimension": lay.dim if mode == "ab" else None, "source_item": None, "human_margin": None,
             "annotator_agreement": 1.0 if mode == "ab" else None}
    for c, v in const.items():
        out[c] = [v] * m
    if mode != "ab":
        out["preference"] = ["chosen" if mode == "plain" else None] * m
        out["human_tie"] = [False] * m
        for c in ("a_is_chosen", "label_raw", "votes_a", "votes_b", "votes_tie"):
            out[c] = [None] * m
    return out, slow, ties


def _texts(out: dict) -> dict:
    m = len(out["pair_id"])
    pid = out["pair_id"]
    return {"pair_id": [x for x in pid for _ in (0, 1)],
            "side": ["chosen", "rejected"] * m,
            "text_id": _interleave(out["chosen_text_id"], out["rejected_text_id"]),
            "context": _interleave(out["context"], out["rejected_context"]),
            "response": _interleave(out["chosen_response"], out["rejected_response"]),
            "text": _interleave(out["chosen_text"], out["rejected_text"])}


def _interleave(x: list, y: list) -> list:
    z = [None] * (2 * len(x))
    z[0::2] = x
    z[1::2] = y
    return z
