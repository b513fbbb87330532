"""``rmtui ingest --inspect FILE``: the columns of an unknown file, a few rows, and the command to read it.

Reads at most a few records with the plain Python readers (no SQL, nothing written); every value shown
is cut short and stripped of control characters (the file is untrusted).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.datasets.readers import _open_bytes, detect_format
from analysis.errors import InputError

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: Any, n: int = 70) -> str:
    """One line, no control characters (escape sequences, bidi overrides), at most ``n`` characters."""
    s = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    s = s.replace("\r", " ").replace("\n", "\\n").replace("\t", " ")
    s = _CTRL.sub("?", s)
    return s[:n] + ("..." if len(s) > n else "")


def peek(path: str | Path, limit: int = 3) -> list[dict]:
    """The first ``limit`` records of a file (JSON lines, JSON array, CSV/TSV, Parquet)."""
    spec = str(path)
    p = Path(spec)
    if not p.exists():
        raise InputError(f"{spec}: no such file", "File not found")
    if p.is_dir():
        raise InputError(f"{spec}: is a folder; name a file", "Bad input")
    fmt = detect_format(spec)
    rows: list[dict] = []
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(p)
            batch = next(pf.iter_batches(batch_size=limit), None)
        except Exception as e:
            raise InputError(f"{spec}: cannot read Parquet: {e}", "Bad input") from e
        return [] if batch is None else batch.to_pylist()[:limit]
    with _open_bytes(p) as fh:
        if fmt == "csv":
            text = fh.read(1 << 20).decode("utf-8-sig", "replace")
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if ".tsv" in p.name else ",")
            for row in reader:
                rows.append(row)
                if len(rows) >= limit:
                    break
            return rows
        head = fh.read(1 << 16).lstrip()
    if head[:1] == b"[":
        with _open_bytes(p) as fh:
            try:
                data = json.loads(fh.read().decode("utf-8", "replace"))
            except ValueError as e:
                raise InputError(f"{spec}: a JSON array that does not parse: {e}", "Bad input") from e
        return [r for r in data[:limit] if isinstance(r, dict)] if isinstance(data, list) else []
    with _open_bytes(p) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            if isinstance(obj, dict):
                rows.append(obj)
            if len(rows) >= limit or lineno > 1000:
                break
    return rows


_A_B = [("response_a", "response_b"), ("response_0", "response_1"), ("response1", "response2"),
        ("response_1", "response_2"), ("output_1", "output_2"), ("output1", "output2"), ("answer_a", "answer_b"),
        ("completion_a", "completion_b"), ("conversation_a", "conversation_b"), ("human_ref_A", "human_ref_B"),
        ("a", "b"), ("A", "B")]
_PROMPTS = ["prompt", "instruction", "question", "history", "query", "context", "input"]
_LABELS = ["label", "labels", "winner", "preference", "choice", "better", "better_response_id", "human_label",
           "preferred", "annotation", "annotations", "votes"]
_SCORES = [("score_a", "score_b"), ("score_A", "score_B"), ("rating_a", "rating_b"), ("score_0", "score_1")]


def suggest(columns: list[str], rows: list[dict]) -> tuple[str | None, str | None]:
    """(preset name or None, ``--map ...`` or None) for a file with these columns."""
    from analysis.datasets.presets import all_presets
    from analysis.datasets.shapes import parse_map

    have = set(columns)
    best = None
    for p in all_presets().values():
        mapping, shape = parse_map(p.map_items(), label=p.label, pairs=p.pairs, preset=p.name)
        if shape is None:  # a chosen/rejected preset
            needed = {mapping.get("chosen", "chosen"), mapping.get("rejected", "rejected")}
            needed |= {mapping[k] for k in ("prompt", "subset") if k in mapping}
        else:
            needed = set(shape.prompt) | {c for c in (shape.a, shape.b, shape.chosen, shape.rejected,
                                                       shape.completions, shape.score_a, shape.score_b) if c}
            needed |= {c for cols in shape.labels.values() for c in cols}
            needed |= {c for at in shape.attrs for c in (at.a, at.b) if c}
        if needed and needed <= have and (best is None or len(needed) > best[0]):
            best = (len(needed), p.name)
    if best and best[0] >= 2:
        return best[1], None
    parts = []
    prompt = [c for c in _PROMPTS if c in have]
    if "instruction" in prompt and "input" in prompt:
        parts.append("prompt=instruction+input")
    elif prompt:
        parts.append(f"prompt={prompt[0]}")
    if {"chosen", "rejected"} <= have:
        return None, ",".join(parts + ["chosen=chosen", "rejected=rejected"])
    ab = next(((a, b) for a, b in _A_B if a in have and b in have), None) or _paired_columns(columns, rows)
    if ab:
        parts += [f"a={ab[0]}", f"b={ab[1]}"]
        annot = sorted(c for c in columns if re.fullmatch(r"(annotator|rater|judge|label)_?\d+", c, re.I))
        lab = [c for c in _LABELS if c in have] or _label_like(columns, rows, ab)
        if annot:
            parts.append("label=" + ",".join(annot))
        elif lab:
            parts.append(f"label={lab[0]}")
        sc = next(((a, b) for a, b in _SCORES if a in have and b in have), None)
        if sc:
            parts += [f"score_a={sc[0]}", f"score_b={sc[1]}"]
        return None, ",".join(parts)
    lists = [c for c in columns if rows and isinstance(rows[0].get(c), list) and rows[0][c]
             and isinstance(rows[0][c][0], (dict, str)) and c not in ("messages",)]
    for c in lists:
        first = rows[0][c][0]
        if isinstance(first, dict) and not {"role", "content"} <= set(first):
            keys = list(first)
            text = next((k for k in ("response", "text", "content", "completion") if k in keys), keys[0])
            rating = next((k for k in ("overall_score", "score", "rating") if k in keys), None)
            if rating:
                return None, ",".join(parts + [f"completions={c}", f"text={text}", f"rating={rating}"])
    return None, None


_SUFFIXES = (("1", "2"), ("0", "1"), ("_a", "_b"), ("_A", "_B"), ("a", "b"), ("A", "B"))


def _texty(rows: list[dict], c: str) -> bool:
    v = next((r.get(c) for r in rows if r.get(c) is not None), None)
    return isinstance(v, (str, list))


def _paired_columns(columns: list[str], rows: list[dict]) -> tuple[str, str] | None:
    """Two text columns named alike but for a 1/2, 0/1 or a/b ending (response1/response2, ...)."""
    for c in columns:
        for s1, s2 in _SUFFIXES:
            if c.endswith(s1) and len(c) > len(s1):
                other = c[: -len(s1)] + s2
                if other in columns and _texty(rows, c) and _texty(rows, other):
                    return c, other
    return None


def _label_like(columns: list[str], rows: list[dict], ab: tuple[str, str]) -> list[str]:
    """Columns whose values look like labels (1/2, A/B, model_a, tie, -1/+1, 0/1)."""
    from analysis.datasets.shapes import DEFAULT_LABELS, norm_label

    known = {norm_label(v) for vals in DEFAULT_LABELS.values() for v in vals} | {"0", "-1"}
    out = []
    for c in columns:
        if c in ab:
            continue
        vals = [r.get(c) for r in rows if r.get(c) is not None]
        if vals and all(not isinstance(v, (list, dict)) and norm_label(v) in known for v in vals):
            out.append(c)
    return out


SCAN_RECORDS = 100_000  # --inspect reads at least this many records (all, when the file has fewer)
# a column whose few values group the pairs (proposed as subset=)
_SUBSET_NAMES = ("subset", "scenario", "category", "categories", "task", "task_type", "domain", "topic", "source",
                 "language", "lang", "dataset", "split_name", "type")


def iter_records(path: str | Path, limit: int | None = None):
    """The records of a file one by one (JSON lines, a JSON array, CSV/TSV, Parquet), streaming where the
    format allows (a JSON array is one document); at most ``limit``."""
    spec = str(path)
    p = Path(spec)
    fmt = detect_format(spec)
    n = 0
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(p)
            for batch in pf.iter_batches(batch_size=4096):
                for r in batch.to_pylist():
                    yield r
                    n += 1
                    if limit is not None and n >= limit:
                        return
        except Exception as e:
            raise InputError(f"{spec}: cannot read Parquet: {e}", "Bad input") from e
        return
    if fmt == "csv":
        with _open_bytes(p) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
            reader = csv.reader(text, delimiter="\t" if ".tsv" in p.name else ",")
            header = next(reader, None)
            from analysis.datasets.readers import check_header

            check_header(header, spec)
            for row in reader:
                yield dict(zip(header or [], row))
                n += 1
                if limit is not None and n >= limit:
                    return
        return
    with _open_bytes(p) as fh:
        head = fh.read(1 << 16).lstrip()
    if head[:1] == b"[":
        with _open_bytes(p) as fh:
            try:
                data = json.loads(fh.read().decode("utf-8", "replace"))
            except ValueError as e:
                raise InputError(f"{spec}: a JSON array that does not parse: {e}", "Bad input") from e
        for r in (data if isinstance(data, list) else [])[:limit]:
            if isinstance(r, dict):
                yield r
        return
    with _open_bytes(p) as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8", "replace"))
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict):
                yield obj
                n += 1
                if limit is not None and n >= limit:
                    return


@dataclass
class Scan:
    records: int = 0
    complete: bool = True                                   # every record of the file was read
    values: dict[str, dict[str, int]] = field(default_factory=dict)  # label column -> value -> count
    distinct: dict[str, dict[str, int]] = field(default_factory=dict)  # subset candidates -> value -> count


def scan(path: str | Path, label_cols: list[str], limit: int = SCAN_RECORDS) -> Scan:
    """Label values with counts over the first ``limit`` records (all, when fewer), and the values of the
    columns that could be a subset."""
    from analysis.datasets.shapes import Shape

    shape = Shape(labels={None: list(label_cols)})
    out = Scan()
    for r in iter_records(path, limit + 1):
        if out.records >= limit:
            out.complete = False
            break
        out.records += 1
        shape.observe(r)
        for c, v in r.items():
            if c.lower() in _SUBSET_NAMES and isinstance(v, (str, int)) and not isinstance(v, bool):
                d = out.distinct.setdefault(c, {})
                if len(d) <= 200:
                    d[str(v)] = d.get(str(v), 0) + 1
    out.values = shape._seen
    return out


def _subset_column(sc: Scan, taken: set[str]) -> str | None:
    for name in _SUBSET_NAMES:
        for c, d in sc.distinct.items():
            if c.lower() == name and c not in taken and 2 <= len(d) <= 100 and len(d) < max(sc.records, 1):
                return c
    return None


def inspect_source(spec: str, *, limit: int = 3, study: str = "study.duckdb") -> str:
    """The columns and a few values of a file, its label values with counts over a scan of the file, and
    an ingest command, shell-quoted so that it runs as printed (it stops, naming the counts, where the
    file cannot tell which label value means which)."""
    import shlex

    from analysis.datasets.presets import get_preset
    from analysis.datasets.shapes import DEFAULT_LABELS, _NUMERIC_RE, norm_label, parse_map, value_counts

    rows = peek(spec, limit)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"{clean(spec, 200)}: {len(columns)} columns in the first {len(rows)} records"]
    for c in columns:
        v = next((r[c] for r in rows if c in r), None)
        lines.append(f"  {clean(c, 40):28} {type(v).__name__:8} {clean(v)}")
    preset, mapping = suggest(columns, rows)
    label_cols: list[str] = []
    taken: set[str] = set()
    spec_label = None
    ab = ("A", "B")
    if preset or mapping:
        p = get_preset(preset) if preset else None
        _, shape = parse_map(p.map_items() if p else [mapping], label=p.label if p else None)
        if shape is not None:
            label_cols = [c for cols in shape.labels.values() for c in cols]
            taken = set(label_cols) | set(shape.prompt) | {c for c in (shape.a, shape.b, shape.chosen,
                                                                       shape.rejected, shape.completions) if c}
            spec_label = shape.label_spec
            ab = (shape.a or "A", shape.b or "B")
    sc = scan(spec, label_cols)
    what = f"all {sc.records:,} records" if sc.complete else f"the first {sc.records:,} records"
    sub = _subset_column(sc, taken)
    args = ["rmtui", "ingest", spec]
    if preset:
        args += ["--preset", preset] + (["--map", f"subset={sub}"] if sub else [])
    elif mapping:
        args += ["--map", mapping + (f",subset={sub}" if sub else "")]
    question = None
    for col in label_cols:
        counts = sc.values.get(col, {})
        lines.append(f"label column {clean(col, 40)!s}, values in {what}: {value_counts(counts) or 'none'}")
        known = spec_label.lookup() if spec_label is not None else {}
        numeric = {v for v in counts if _NUMERIC_RE.match(v)}
        unknown = [v for v in counts if v not in known]
        if (spec_label is None or not spec_label.explicit) and numeric and not numeric <= {"1", "2"}:
            question = (f"  which value means A won ({clean(ab[0], 40)}), which B won ({clean(ab[1], 40)}) and which a "
                        "tie, the file does not say: the command stops there and asks, with these counts; add "
                        "--label a=...,b=...,tie=... as the dataset's card defines them")
        elif unknown:
            question = (f"  values {', '.join(clean(v, 20) for v in unknown[:5])} are not among the known spellings "
                        f"({', '.join(f'{k}={chr(124).join(v)}' for k, v in DEFAULT_LABELS.items())}): add --label "
                        "a=...,b=...,tie=... from the dataset's card")
    if sub:
        d = sc.distinct[sub]
        lines.append(f"subset column {clean(sub, 40)}: {len(d)} values ({', '.join(clean(k, 20) for k in list(d)[:6])}"
                     f"{', ...' if len(d) > 6 else ''}), proposed as subset={clean(sub, 40)}")
    if preset or mapping:
        args += ["--study", study]
        lines.append("suggested command (runs as printed):")
        lines.append(shlex.join(args))
        if question:
            lines.append(question)
    else:
        lines.append("no suggestion: map the columns with --map (docs/datasets.md), or use --sql")
    return "\n".join(lines)
