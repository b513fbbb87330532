"""Reading preference datasets into pairs.

Sources:
- hh-rlhf JSONL (plain or gzip): ``{"chosen": transcript, "rejected": transcript}`` per line.
- Generic JSONL / CSV / Parquet with (prompt, chosen, rejected) columns, or (chosen, rejected)
  transcripts, or chat-message lists (``[{"role": ..., "content": ...}, ...]``), with a column map.
- A Hugging Face dataset by name: ``hf:Anthropic/hh-rlhf`` (needs the ``datasets`` package and a
  network, or a local cache).

Each reader yields :class:`Pair` records and :class:`Issue` records; bad input never raises unless
``strict`` is set, and then the error names the file and line.

The split rule (as the SEAL paper scored hh-rlhf): a transcript is cut at its *last* ``"Assistant:"``.
The context is everything before that marker, with trailing whitespace removed; the response is
everything after it, with surrounding whitespace removed. ``tokenizer(context, response)`` is what the
``pair`` scoring format feeds the RM.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from analysis.errors import InputError
from analysis.hashing import pair_id as make_pair_id
from analysis.hashing import text_id as make_text_id
from analysis.datasets.records import (  # noqa: F401  (their former home: imported from here too)
    ASSISTANT, HUMAN, _TURN_RE, Pair, Issue, ReadOptions, _RowError, split_transcript, join_transcript, transcript_to_messages, messages_to_transcript, _SPLITS, subset_split_from_name, _CHAT_ROLES, _is_chat, _as_side, row_to_pair)
from analysis.datasets.shapes import RowError as _ShapeRowError

def parse_mapping(items: Iterable[str] | str | None) -> dict[str, str]:
    """``["chosen=response_a", "rejected=response_b"]`` or ``"chosen=a,rejected=b"`` -> dict."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    from analysis.datasets.shapes import assignments

    out: dict[str, str] = {}
    allowed = {"prompt", "chosen", "rejected", "subset", "split"}
    for part, k, v in assignments(items, "--map", "NAME=COLUMN, e.g. chosen=response_a"):
        if k not in allowed:
            raise InputError(
                f"--map {part!r}: {k!r} is not one of {', '.join(sorted(allowed))}", "Bad option"
            )
        out[k] = v
    return out


def detect_format(spec: str) -> str:
    if spec.startswith("hf:"):
        return "hf"
    name = spec.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return "csv"
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return "jsonl"
    raise InputError(
        f"{spec}: cannot tell the format from the name; use --format hh|jsonl|csv|parquet or an hf: name",
        "Unknown format",
    )


# ---------------------------------------------------------------------------------------------
# row -> pair


def _excerpt(s: str | bytes, n: int = 120) -> str:
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    s = s.replace("\n", "\\n")
    return s[:n] + ("..." if len(s) > n else "")


# ---------------------------------------------------------------------------------------------
# readers


def _open_bytes(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


# issue kinds of a source whose reading stopped before its end (what was read before is kept)
READ_STOPPED = ("truncated", "not_gzip", "unreadable")

# what a broken or cut-off .gz (or an unreadable file) raises while it is read
_READ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def _read_problem(src: str, e: BaseException, lines_read: int, bytes_read: int) -> Issue:
    """The issue for a file whose reading stopped: what was read before it is kept."""
    kept = f"the {lines_read:,} line{'s' if lines_read != 1 else ''} before it were read"
    if isinstance(e, EOFError):
        return Issue(src, lines_read + 1, "truncated",
                     f"the compressed file ends early (cut off after {bytes_read:,} bytes of text, in line "
                     f"{lines_read + 1}); {kept}", "")
    if isinstance(e, (gzip.BadGzipFile, zlib.error)) or "gzip" in str(e).lower():
        if not bytes_read:
            return Issue(src, 1, "not_gzip", f"not a gzip file ({e}); rename it without .gz if it is plain text", "")
        return Issue(src, lines_read + 1, "truncated", f"corrupt compressed data after {bytes_read:,} bytes of text "
                     f"({e}); {kept}", "")
    return Issue(src, lines_read + 1, "unreadable", f"cannot read: {getattr(e, 'strerror', None) or e}; {kept}", "")


def _guarded_lines(fh, src: str) -> Iterator[bytes | Issue]:
    """The lines of an open file; a file that stops being readable (a cut-off or corrupt .gz) ends with
    one :class:`Issue` after the lines read before it."""
    lineno, nbytes = 0, 0
    try:
        for raw in fh:
            lineno += 1
            nbytes += len(raw)
            yield raw
    except _READ_ERRORS as e:
        yield _read_problem(src, e, lineno, nbytes)


def _read_all(path: Path) -> tuple[bytes, Issue | None]:
    """The whole file's bytes; for a cut-off or corrupt .gz what could be read up to the last whole line,
    and the issue."""
    chunks: list[bytes] = []
    try:
        with _open_bytes(path) as fh:
            read = getattr(fh, "read1", fh.read)  # read1: a cut-off .gz keeps what came before the cut
            while True:
                b = read(1 << 16)
                if not b:
                    break
                chunks.append(b)
    except _READ_ERRORS as e:
        raw = b"".join(chunks)
        cut = raw.rfind(b"\n") + 1
        return raw[:cut], _read_problem(str(path), e, raw[:cut].count(b"\n"), cut)
    return b"".join(chunks), None


def _nested_too_deep(src: str, lineno: int, line: str | bytes) -> Issue:
    return Issue(src, lineno, "malformed_json", "JSON nested too deeply to read (thousands of levels)",
                 _excerpt(line[:200]))


def _read_json_array(path: Path, opts: ReadOptions, subset: str, split: str, dataset: str) -> Iterator[Pair | Issue]:
    """A .json file holding one JSON array of records (not JSON lines): record N is reported as line N."""
    src = str(path)
    raw, problem = _read_all(path)
    if problem is not None:
        yield problem
        return
    try:
        records = json.loads(raw.decode("utf-8"))
    except RecursionError:
        yield _nested_too_deep(src, 1, raw)
        return
    except UnicodeDecodeError as e:
        yield Issue(src, 1, "invalid_utf8", f"invalid UTF-8 at byte {e.start}", _excerpt(raw[:200]))
        return
    except ValueError as e:
        yield Issue(src, e.lineno, "malformed_json", f"a JSON array that does not parse: {e.msg} "
                    f"(line {e.lineno}, column {e.colno})", "")
        return
    if not isinstance(records, list):
        yield Issue(src, 1, "malformed_json", f"expected a JSON array or JSON lines, got {type(records).__name__}", "")
        return
    for i, obj in enumerate(records, start=1):
        if opts.limit is not None and i > opts.limit:
            break
        try:
            text = json.dumps(obj, ensure_ascii=False)[:400]
        except RecursionError:
            yield _nested_too_deep(src, i, "")
            continue
        if not isinstance(obj, dict):
            yield Issue(src, i, "malformed_json", f"record {i}: expected a JSON object, got {type(obj).__name__}",
                        _excerpt(text))
            continue
        yield from _row(obj, src, i, opts, subset, split, dataset, text)


def _starts_with_bracket(path: Path) -> bool:
    try:
        with _open_bytes(path) as fh:
            head = fh.read(4096).lstrip()
    except _READ_ERRORS:  # reported by the reader that reads it
        return False
    return head[:1] == b"["


def _read_jsonl(path: Path, opts: ReadOptions, subset: str, split: str, dataset: str) -> Iterator[Pair | Issue]:
    if path.name.lower().endswith((".json", ".json.gz")) and _starts_with_bracket(path):
        yield from _read_json_array(path, opts, subset, split, dataset)
        return
    src = str(path)
    with _open_bytes(path) as fh:
        for lineno, raw in enumerate(_guarded_lines(fh, src), start=1):
            if isinstance(raw, Issue):  # a cut-off or corrupt .gz: the lines before it are kept
                yield raw
                break
            if opts.limit is not None and lineno > opts.limit:
                break
            yield from jsonl_line(raw, src, lineno, opts, subset, split, dataset)


def jsonl_line(raw: bytes, src: str, lineno: int, opts: ReadOptions, subset: str, split: str,
               dataset: str) -> Iterator[Pair | Issue]:
    """The pairs and issues of one line of a JSON-lines file (a blank line gives none)."""
    if not raw.strip():
        return
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Issue(src, lineno, "invalid_utf8", f"invalid UTF-8 at byte {e.start}", _excerpt(raw))
        return
    try:
        obj = json.loads(line)
    except RecursionError:  # '[[[[...' thousands deep: this line only, the next rows are read
        yield _nested_too_deep(src, lineno, line)
        return
    except ValueError as e:
        yield Issue(src, lineno, "malformed_json", f"malformed JSON: {e.msg} (column {e.colno})", _excerpt(line))
        return
    if not isinstance(obj, dict):
        yield Issue(src, lineno, "malformed_json", f"expected a JSON object, got {type(obj).__name__}", _excerpt(line))
        return
    yield from _row(obj, src, lineno, opts, subset, split, dataset, line)


def _row(obj: dict, src: str, lineno: int, opts: ReadOptions, subset: str, split: str, dataset: str,
         raw: str) -> Iterator[Pair | Issue]:
    if getattr(opts.shape, "scan_only", False):  # first pass over the labels (analysis.datasets.shape_pairs.LabelScan)
        opts.shape.observe(obj)
        return
    try:
        if opts.shape is not None:
            from analysis.datasets.shape_pairs import build_pairs

            pairs = build_pairs(opts.shape, obj, source=src, line=lineno, subset=subset, split=split,
                                dataset=dataset)
        else:
            pairs = [row_to_pair(obj, source=src, line=lineno, subset=subset, split=split, dataset=dataset,
                                 mapping=opts.mapping)]
    except (_RowError, _ShapeRowError) as e:
        yield Issue(src, lineno, e.kind, e.message, _excerpt(raw))
        return
    except RecursionError:  # a field nested thousands deep
        yield _nested_too_deep(src, lineno, raw)
        return
    for pair in pairs:
        yield from _checked(pair, src, lineno, raw)


def _checked(pair: Pair, src: str, lineno: int, raw: str) -> Iterator[Pair | Issue]:
    for side in ("chosen", "rejected"):
        try:
            getattr(pair, f"{side}_text").encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate ("\ud800" in JSON): not Unicode text, cannot be stored
            yield Issue(src, lineno, "invalid_utf8", f"the {side} text holds a lone surrogate "
                        f"(U+{ord(e.object[e.start]):04X}, an escape such as \\ud800 with no pair), which is not "
                        "Unicode text; the row was skipped", _excerpt(raw.encode("utf-8", "backslashreplace")))
            return
    if pair.identical:
        yield Issue(src, lineno, "identical", "chosen and rejected are identical (kept, flagged)",
                    _excerpt(pair.chosen_response), fatal=False)
    for side in ("chosen", "rejected"):
        if not getattr(pair, f"{side}_response"):
            # real hh-rlhf has a few of these: the assistant's last turn is empty. Kept, flagged.
            yield Issue(src, lineno, "empty_response",
                        f'the {side} response after the last "Assistant:" is empty (kept, flagged)',
                        _excerpt(raw), fatal=False)
    yield pair


def _read_csv(path: Path, opts: ReadOptions, subset: str, split: str, dataset: str) -> Iterator[Pair | Issue]:
    src = str(path)
    raw, problem = _read_all(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        yield Issue(src, line, "invalid_utf8", f"invalid UTF-8 at byte {e.start}; the file was not read", "")
        return
    delim = "\t" if ".tsv" in path.name else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        check_header(reader.fieldnames, src)
    except csv.Error:  # reported as the first row's problem below
        pass
    n = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            yield Issue(src, reader.line_num, "malformed_csv", f"malformed CSV: {e}", "")
            break
        n += 1
        if opts.limit is not None and n > opts.limit:
            break
        lineno = reader.line_num  # physical line where this record ended
        if None in row:
            yield Issue(src, lineno, "malformed_csv", "more fields than the header names", _excerpt(str(row.get(None))))
            continue
        yield from _row(row, src, lineno, opts, subset, split, dataset, json.dumps(row, ensure_ascii=False))
    if problem is not None:  # a cut-off .csv.gz: the rows before the cut were read
        yield problem


def check_header(names: list[str] | None, src: str) -> None:
    """A CSV header naming one column twice is refused naming it (DictReader would silently keep the
    later column's values)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names or [], start=1):
        if name in seen:
            from analysis.textsafe import visible_line

            raise InputError(f"{src}:1: the header names the column {visible_line(name)!r} twice (columns "
                             f"{seen[name]} and {i}); rename one so it is clear which is meant", "Bad input")
        seen[name] = i


def _read_frame_rows(rows: Iterable[dict], src: str, opts: ReadOptions, subset: str, split: str,
                     dataset: str) -> Iterator[Pair | Issue]:
    for i, row in enumerate(rows, start=1):
        if opts.limit is not None and i > opts.limit:
            break
        yield from _row(row, src, i, opts, subset, split, dataset, str(row)[:200])


def _read_parquet(path: Path, opts: ReadOptions, subset: str, split: str, dataset: str) -> Iterator[Pair | Issue]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for broken files
        raise InputError(f"{path}: cannot read Parquet: {e}", "Bad input") from e
    yield from _read_frame_rows(table.to_pylist(), str(path), opts, subset, split, dataset)


def _read_hf(spec: str, opts: ReadOptions) -> Iterator[Pair | Issue]:
    name = spec[3:]
    try:
        import datasets  # type: ignore
    except ImportError as e:
        raise InputError(
            f"{spec}: reading a Hugging Face dataset needs the 'datasets' package: pip install 'rmtui[hf]'",
            "Missing package",
        ) from e
    try:
        datasets.disable_progress_bars()
    except AttributeError:  # pragma: no cover - old datasets
        pass
    try:
        ds = datasets.load_dataset(name, data_dir=opts.hf_data_dir, split=opts.hf_split)
    except Exception as e:
        raise InputError(
            f"{spec}: could not load split {opts.hf_split!r}"
            + (f" of data_dir {opts.hf_data_dir!r}" if opts.hf_data_dir else "")
            + f" (no network or local cache?): {type(e).__name__}: {e}",
            "Dataset not reachable",
        ) from e
    subset = opts.subset or (opts.hf_data_dir or name.split("/")[-1])
    split = opts.split or opts.hf_split
    yield from _read_frame_rows(iter(ds), spec, opts, subset, split, name)


def read_pairs(spec: str | Path, opts: ReadOptions | None = None) -> Iterator[Pair | Issue]:
    """Yield pairs and issues from one source (file path or ``hf:NAME``)."""
    opts = opts or ReadOptions()
    spec = str(spec)
    if opts.limit is not None and opts.limit < 1:  # 0 or -5 read nothing and looked like success
        raise InputError(f"limit {opts.limit}: must be at least 1 (leave it out to read every row)", "Bad option")
    if not spec.startswith("hf:") and Path(spec).is_dir():  # before the format is guessed from the name
        raise InputError(f"{spec}: is a folder; name the files to ingest (a glob like {spec}/*.jsonl.gz works "
                         "in a config)", "Bad input")
    fmt = opts.fmt or detect_format(spec)
    if opts.shape is not None and not getattr(opts.shape, "scan_only", False) and opts.shape.needs_scan():
        from dataclasses import replace

        from analysis.datasets.shape_pairs import LabelScan

        for _ in read_pairs(spec, replace(opts, shape=LabelScan(opts.shape))):
            pass
        opts.shape.resolve(spec)
    if fmt == "hf":
        yield from _read_hf(spec, opts)
        return
    path = Path(spec)
    if not path.exists():
        if path.is_symlink():  # a dangling link or a loop ("no such file" hid which)
            import errno
            import os

            try:
                os.stat(path)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise InputError(f"{spec}: a symbolic link loop (the link points back to itself)",
                                     "Bad input") from None
            raise InputError(f"{spec}: a symbolic link to {os.readlink(path)}, which does not exist",
                             "File not found")
        raise InputError(f"{spec}: no such file", "File not found")
    if path.is_dir():
        raise InputError(f"{spec}: is a folder; name the files to ingest", "Bad input")
    subset_guess, split_guess = subset_split_from_name(path)
    subset = opts.subset or subset_guess
    split = opts.split or split_guess
    dataset = "hh-rlhf" if fmt == "hh" or _looks_like_hh(path) else subset
    if fmt in ("hh", "jsonl"):
        yield from _read_jsonl(path, opts, subset, split, dataset)
    elif fmt == "csv":
        yield from _read_csv(path, opts, subset, split, dataset)
    elif fmt == "parquet":
        yield from _read_parquet(path, opts, subset, split, dataset)
    else:
        raise InputError(f"{spec}: unknown format {fmt!r} (hh, jsonl, csv, parquet, hf)", "Bad option")


_HH_SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled", "red-team-attempts")


def _looks_like_hh(path: Path) -> bool:
    return any(path.name.startswith(s) for s in _HH_SUBSETS) or "hh-rlhf" in str(path)
