"""``rmtui ingest --inspect FILE``: the columns of an unknown file, a few rows, and the command to read it.

Reads at most a few records with the plain Python readers (no SQL, nothing written); every value shown
is cut short and stripped of control characters (the file is untrusted).
"""

from __future__ import annotations

import csv
import io
import json
import re
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
           "preferred", "annotation"]
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


def inspect_source(spec: str, *, limit: int = 3, study: str = "study.duckdb") -> str:
    rows = peek(spec, limit)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"{clean(spec, 200)}: {len(columns)} columns in the first {len(rows)} records"]
    for c in columns:
        v = next((r[c] for r in rows if c in r), None)
        lines.append(f"  {clean(c, 40):28} {type(v).__name__:8} {clean(v)}")
    preset, mapping = suggest(columns, rows)
    q = spec if re.fullmatch(r"[\w./:+-]+", spec) else "'" + spec.replace("'", "'\\''") + "'"
    if preset:
        lines.append(f"suggested: rmtui ingest {q} --preset {preset} --study {study}")
    elif mapping:
        lines.append(f"suggested: rmtui ingest {q} --map {mapping} --study {study}")
        if "label=" in mapping:
            vals = sorted({clean(r.get(mapping.split('label=')[1].split(',')[0]), 20) for r in rows})
            lines.append(f"  label values seen: {', '.join(vals)}; if they are not 1/2, A/B, model_a/model_b, tie: "
                         "add --label a=...,b=...,tie=...")
    else:
        lines.append("no suggestion: map the columns with --map (docs/datasets.md), or use --sql")
    return "\n".join(lines)
