"""A record's pairs under its published shape: :func:`row_pairs` reads the A/B, scores or ranked-list
columns a :class:`~analysis.datasets.shapes.Shape` names and gives each pair's sides, label and attributes;
:func:`build_pairs` turns them into :class:`~analysis.datasets.records.Pair` records (the readers call it);
:class:`LabelScan` the readers' first pass over the label values. Built on ``shapes`` (the shape itself,
the map and label parsing) and ``records``; neither imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from analysis.datasets.shapes import (RowError, Shape, _get_path, _missing, _num, attr_value, majority)


@dataclass
class PairSpec:
    """One pair of a record before it becomes a :class:`analysis.datasets.readers.Pair`: raw sides and extras."""

    chosen: Any
    rejected: Any
    subset_suffix: str | None
    extra: dict
    chosen_attrs: dict
    rejected_attrs: dict
    chosen_col: str | None = None    # the file's own column of each side (for messages)
    rejected_col: str | None = None


def prompt_value(shape: Shape, row: dict) -> str | None:
    """The prompt of a record, several columns joined with a blank line (``instruction+input``)."""
    if not shape.prompt:
        return None
    parts = []
    for c in shape.prompt:
        if c not in row:
            raise RowError("missing_field", f"field {c!r} is missing")
        v = row[c]
        if _missing(v):
            continue
        if hasattr(v, "tolist"):
            v = v.tolist()
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            v = "\n\n".join(v)
        parts.append(v if not isinstance(v, str) else v.strip())
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return "\n\n".join(p if isinstance(p, str) else str(p) for p in parts)


def _attrs_ab(shape: Shape, row: dict) -> tuple[dict, dict]:
    a, b = {}, {}
    for at in shape.attrs:
        if at.item:
            continue
        for side, col, out in (("a", at.a, a), ("b", at.b, b)):
            if col in row:
                val = attr_value(row[col])
                if val is not None:
                    out[at.name] = val
    return a, b


def row_pairs(shape: Shape, row: dict) -> list[PairSpec]:
    """The pairs one record holds under ``shape`` (several for lists and for two dimensions)."""
    if shape.kind == "list":
        return _list_pairs(shape, row)
    if shape.kind == "plain":
        for c in (shape.chosen or "chosen", shape.rejected or "rejected"):
            if c not in row:
                raise RowError("missing_field", f"field {c!r} is missing")
        ca, ra = _attrs_ab(shape, row)
        return [PairSpec(row[shape.chosen or "chosen"], row[shape.rejected or "rejected"], None,
                         {"preference": "chosen"}, ca, ra, shape.chosen or "chosen", shape.rejected or "rejected")]
    for c in (shape.a, shape.b):
        if c not in row:
            raise RowError("missing_field", f"field {c!r} is missing")
    a_attrs, b_attrs = _attrs_ab(shape, row)
    margin = None
    sa = sb = None
    if shape.score_a:
        for c in (shape.score_a, shape.score_b):
            if c not in row:
                raise RowError("missing_field", f"field {c!r} is missing")
        sa, sb = _num(row[shape.score_a], shape.score_a), _num(row[shape.score_b], shape.score_b)
    if shape.margin:
        if shape.margin not in row:
            raise RowError("missing_field", f"field {shape.margin!r} is missing")
        margin = abs(_num(row[shape.margin], shape.margin))
    out = []
    dims = shape.labels or {None: []}
    for dim, cols in dims.items():
        extra: dict[str, Any] = {"dimension": dim}
        if cols:
            va, vb, vt = shape.votes(row, cols)
            pref = majority(va, vb, vt)
            raw = [row.get(c) for c in cols]
            raw = raw[0] if len(raw) == 1 else raw
            if hasattr(raw, "tolist"):
                raw = raw.tolist()
            extra.update(votes_a=va, votes_b=vb, votes_tie=vt,
                         annotator_agreement=max(va, vb, vt) / (va + vb + vt), label_raw=str(raw)[:200])
        else:
            pref = "a" if sa > sb else "b" if sb > sa else "tie"
            extra["label_raw"] = f"score_a={sa:g} score_b={sb:g}"
        if sa is not None and margin is None:
            margin = abs(sa - sb)
        extra["human_margin"] = 0.0 if (pref == "tie" and margin is not None and sa is not None) else margin
        extra["preference"] = pref
        extra["human_tie"] = pref == "tie"
        extra["a_is_chosen"] = pref != "b"
        if pref == "b":
            out.append(PairSpec(row[shape.b], row[shape.a], dim, extra, b_attrs, a_attrs, shape.b, shape.a))
        else:
            out.append(PairSpec(row[shape.a], row[shape.b], dim, extra, a_attrs, b_attrs, shape.a, shape.b))
    return out


def _list_pairs(shape: Shape, row: dict) -> list[PairSpec]:
    col = shape.completions
    if col not in row:
        raise RowError("missing_field", f"field {col!r} is missing")
    items = row[col]
    if hasattr(items, "tolist"):
        items = items.tolist()
    if not isinstance(items, list):
        raise RowError("bad_value", f"field {col!r} is not a list of completions")
    parallel = None
    if shape.ratings or shape.ranks:
        pc = shape.ratings or shape.ranks
        if pc not in row:
            raise RowError("missing_field", f"field {pc!r} is missing")
        parallel = row[pc].tolist() if hasattr(row[pc], "tolist") else row[pc]
        if not isinstance(parallel, list) or len(parallel) != len(items):
            raise RowError("bad_value", f"field {pc!r} is not a list as long as {col!r}")
    entries = []  # (index, text, score (higher better), attrs)
    for i, it in enumerate(items):
        if isinstance(it, dict):
            key = shape.text or next((k for k in ("response", "text", "content", "completion") if k in it), None)
            text = it.get(key) if key else None
        else:
            text = it
        if _missing(text) if not isinstance(text, list) else not text:
            continue  # a completion without text is left out of the ranking
        try:
            if parallel is not None:
                v = parallel[i]
                if _missing(v):
                    continue
                score = _num(v, shape.ratings or shape.ranks)
                if shape.ranks:
                    score = -score
            elif shape.rank == "@position":
                score = -float(i)
            elif shape.rating:
                v = _get_path(it, shape.rating)
                if _missing(v):
                    continue
                score = _num(v, f"{col}[{i}].{shape.rating}")
            else:
                v = _get_path(it, shape.rank)
                if _missing(v):
                    continue
                score = -_num(v, f"{col}[{i}].{shape.rank}")
        except RowError as e:
            if e.kind == "missing_field":
                continue
            raise
        attrs = {}
        for at in shape.attrs:
            if at.item and isinstance(it, dict):
                val = attr_value(_get_path(it, at.item))
                if val is not None:
                    attrs[at.name] = val
        entries.append((i, text, score, attrs))
    if len(entries) < 2:
        raise RowError("bad_value", f"field {col!r} has fewer than two rated completions")
    order = sorted(entries, key=lambda e: (-e[2], e[0]))
    if shape.pairs_rule == "best-worst":
        combos = [(order[0], order[-1])]
    elif shape.pairs_rule == "adjacent":
        combos = list(zip(order, order[1:]))
    else:
        combos = [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))]
    out = []
    for hi, lo in combos:
        tie = hi[2] == lo[2]
        sign = -1.0 if (shape.ranks or (shape.rank and not shape.rating)) else 1.0
        extra = {"preference": "tie" if tie else "a", "human_tie": tie, "a_is_chosen": True,
                 "human_margin": abs(hi[2] - lo[2]), "source_item": f"{hi[0]}>{lo[0]}" if not tie else f"{hi[0]}={lo[0]}",
                 "label_raw": f"{'rank' if sign < 0 else 'rating'} {sign * hi[2]:g} vs {sign * lo[2]:g}"}
        out.append(PairSpec(hi[1], lo[1], None, extra, hi[3], lo[3]))
    return out


def _check_sides_present(shape: Shape, row: dict) -> None:
    if shape.kind == "ab":
        for c in (shape.a, shape.b):
            if c in row and (row[c] is None or (isinstance(row[c], float) and math.isnan(row[c]))):
                raise RowError("missing_field", f"field {c!r} is missing or null")


def build_pairs(shape: Shape, row: dict, *, source: str, line: int, subset: str, split: str,
                dataset: str) -> list:
    """The :class:`analysis.datasets.readers.Pair` records of one record (the readers call this)."""
    from analysis.datasets.records import row_to_pair

    if shape.subset and shape.subset in row and not _missing(row[shape.subset]):
        subset = str(row[shape.subset])
    if shape.split and shape.split in row and not _missing(row[shape.split]):
        split = str(row[shape.split])
    _check_sides_present(shape, row)
    specs = row_pairs(shape, row)
    prompt = prompt_value(shape, row)
    out = []
    for spec in specs:
        synthetic = {"chosen": spec.chosen, "rejected": spec.rejected}
        if prompt is not None:
            synthetic["prompt"] = prompt
        sub = f"{subset}:{spec.subset_suffix}" if spec.subset_suffix and len(shape.labels) > 1 else subset
        names = {"chosen": spec.chosen_col or f"{shape.completions or 'chosen'}[best]",
                 "rejected": spec.rejected_col or f"{shape.completions or 'rejected'}[other]",
                 "prompt": "+".join(shape.prompt) or "prompt"}
        p = row_to_pair(synthetic, source=source, line=line, subset=sub, split=split, dataset=dataset, mapping={},
                        names=names)
        p.extra = dict(spec.extra)
        p.chosen_attrs = dict(spec.chosen_attrs)
        p.rejected_attrs = dict(spec.rejected_attrs)
        out.append(p)
    return out


class LabelScan:
    """Stands in for a Shape while the readers make a first pass that only looks at label values."""

    scan_only = True

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def observe(self, row: dict) -> None:
        self.shape.observe(row)
