"""Export pairs with everything the study knows about them: JSONL, CSV, Markdown or Parquet.

Used by the app (selection, tag, or the current filter) and by ``rmtui export``. Each record holds the
texts, every RM's rewards per side, margins, regime, gamma, theta, the features of both sides, tags,
note and rewrites (with their rewards). Study metadata (models, featurizers, fit with its SE type)
goes where each format allows it: a Markdown header, the Parquet schema metadata (key ``rmtui``), and
for JSONL and CSV a sidecar ``<file>.meta.json``. A file is never overwritten unless asked.

Texts are untrusted: JSONL and Parquet keep them byte-exact (JSON escapes control characters as
``\u001b``), CSV keeps them byte-exact too (quoted; a spreadsheet shows them as it likes), and Markdown,
which is read in terminals and rendered, shows every control character visibly
(:func:`analysis.textsafe.visible`: ``\x1b`` as ``␛``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.store import Study
from analysis.store import export as store_export
from analysis.store.entries import sorted_ids
from analysis.store.filters import EntryFilter
from analysis.textsafe import md_escape as _e
from analysis.textsafe import visible

FORMATS = ("jsonl", "csv", "md", "parquet")
_EXT = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".md": "md", ".markdown": "md", ".parquet": "parquet"}


class ExportExistsError(RmtuiError):
    """The target file exists and overwrite was not asked for."""

    title = "File exists"

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: exists; choose another name or allow overwriting", self.title)
        self.path = path


@dataclass
class ExportResult:
    path: Path
    fmt: str
    n: int
    meta_path: Path | None


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The format: ``fmt`` if given (it must agree with a known extension), else by extension."""
    ext = Path(path).suffix.lower()
    if fmt:
        f = fmt.lower().lstrip(".")
        f = {"markdown": "md", "json": "jsonl"}.get(f, f)
        if f not in FORMATS:
            raise RmtuiError(f"format {fmt!r}: one of {', '.join(FORMATS)}", "Export format")
        if ext in _EXT and _EXT[ext] != f:
            raise RmtuiError(f"{path}: the extension says {_EXT[ext]} but the format is {f}; make them agree",
                             "Export format")
        return f
    if ext not in _EXT:
        raise RmtuiError(f"{path}: cannot tell the format from {ext or 'no extension'!r}; use .jsonl, .csv, .md "
                         "or .parquet (or pass a format)", "Export format")
    return _EXT[ext]


def _clean(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def export_records(study: Study, ids: Sequence[str]) -> list[dict]:
    """One nested dict per pair (the JSONL record), in the order of ``ids``."""
    fr = store_export.export_frames(study, ids)
    by = {r["pair_id"]: {k: _clean(v) for k, v in r.items()} for r in fr["pairs"].to_dict("records")}
    recs: dict[str, dict] = {}
    for pid in ids:
        p = by.get(pid)
        if p is None:
            continue
        recs[pid] = {
            "pair_id": pid, "dataset": p["dataset"], "subset": p["subset"], "split": p["split"],
            # where the pair comes from: its file (or hf:NAME), the record's position in it, and whether
            # chosen is the source's first answer (A); a merged item lists every record's row
            "source": p["source"], "source_row": p["source_row"], "a_is_chosen": p["a_is_chosen"],
            "source_rows": p["merged_rows"] or (str(p["source_row"]) if p["source_row"] is not None else None),
            "heldout": p["heldout"], "context": p["context"], "chosen": p["chosen_response"],
            "rejected": p["rejected_response"],
            "rewards": {"chosen": {}, "rejected": {}},
            "margin_pre": p["margin_pre"], "margin_post": p["margin_post"], "regime": p["regime"],
            "gamma": p["gamma"], "theta": p["theta"], "confusing": p["confusing"], "fit_id": p["fit_id"],
            "features": {"chosen": {}, "rejected": {}},
            "tags": [], "note": None, "rewrites": [],
        }
        if p.get("preference") is not None and p["preference"] != "chosen":  # A/B, votes, scores, lists
            recs[pid].update({k: p.get(k) for k in (
                "preference", "human_tie", "label_raw", "votes_a", "votes_b", "votes_tie", "annotator_agreement",
                "human_margin", "dimension", "source_item")})
    for r in fr["rewards"].itertuples(index=False):
        if r.pair_id in recs:
            recs[r.pair_id]["rewards"][r.side][f"{r.role}:{r.model}"] = _clean(r.reward)
    for r in fr["features"].itertuples(index=False):
        if r.pair_id in recs:
            recs[r.pair_id]["features"][r.side][r.feature] = _clean(r.value)
    for r in fr["triage"].itertuples(index=False):
        if r.pair_id in recs:
            if r.tag is not None and not (isinstance(r.tag, float)):
                recs[r.pair_id]["tags"].append(r.tag)
            elif r.note is not None:
                recs[r.pair_id]["note"] = r.note
    rw_rewards: dict[str, dict] = {}
    for r in fr["rewrite_rewards"].itertuples(index=False):
        rw_rewards.setdefault(r.rewrite_id, {})[f"{r.role}:{r.model}"] = _clean(r.reward)
    for r in fr["rewrites"].itertuples(index=False):
        if r.pair_id in recs:
            recs[r.pair_id]["rewrites"].append({
                "rewrite_id": r.rewrite_id, "side": r.side, "rewriter": r.rewriter, "params": r.params,
                "new_response": r.new_response, "similarity": _clean(r.similarity), "kept": _clean(r.kept),
                "rewards": rw_rewards.get(r.rewrite_id, {}),
            })
    return [recs[pid] for pid in ids if pid in recs]


def _flat(rec: dict) -> dict:
    out = {k: v for k, v in rec.items() if k not in ("rewards", "features", "tags", "rewrites")}
    for side in ("chosen", "rejected"):
        for m, v in rec["rewards"][side].items():
            out[f"reward_{side}[{m}]"] = v
        for f, v in rec["features"][side].items():
            out[f"{side}.{f}"] = v
    out["tags"] = " ".join(rec["tags"])
    out["n_rewrites"] = len(rec["rewrites"])
    out["rewrites"] = json.dumps(rec["rewrites"], ensure_ascii=False) if rec["rewrites"] else ""
    return out


def _fence(text: str) -> str:
    fence = "```"
    while fence in (text or ""):
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def _markdown(recs: list[dict], meta: dict) -> str:
    lines = ["# rmtui export", ""]
    # every data-derived string outside a fence is Markdown/HTML escaped (_e = textsafe.md_escape)
    lines.append(f"Study: {_e(meta['study'])} · {len(recs)} pairs")
    lines.append("")
    lines.append("Models: " + ", ".join(f"{_e(m['name'])} ({_e(m['role'])}, {_e(m['path_or_hub_id'])})"
                                        for m in meta["models"]))
    lines.append("")
    lines.append("Featurizers: " + (", ".join(f"{_e(f['featurizer'])} v{_e(f['version'])}" for f in meta["featurizers"])
                                    or "none"))
    if meta.get("fit"):
        fit = meta["fit"]
        lines += ["", f"Fit: `{fit['fit_id']}` · SE: {_e(fit['se_type'])} · n = {fit['n']}"]
    for r in recs:
        lines += ["", f"## {_e(r['pair_id'])}", ""]
        lines.append(f"- subset: {_e(r['subset'])} · split: {_e(r['split'])} · held out: {r['heldout']}")
        lines.append(f"- source: {_e(r['source'])} · row: {_e(r['source_rows'])} · a_is_chosen: {r['a_is_chosen']}")
        lines.append(f"- regime: {_e(r['regime'])} · gamma: {_e(r['gamma'])} · margin pre: {r['margin_pre']} · "
                     f"margin post: {r['margin_post']}")
        if r["tags"]:
            lines.append(f"- tags: {', '.join(_e(t) for t in r['tags'])}")
        if r["note"]:
            lines.append(f"- note: {_e(r['note'])}")
        lines += ["", "### Conversation", "", _fence(r["context"])]
        for side in ("chosen", "rejected"):
            rw = ", ".join(f"{_e(m)} {v:.4f}" if isinstance(v, (int, float)) else f"{_e(m)} -"
                           for m, v in r["rewards"][side].items())
            ft = ", ".join(f"{_e(k)}={v:g}" if isinstance(v, (int, float)) else f"{_e(k)}=-"
                           for k, v in r["features"][side].items())
            lines += ["", f"### {side.capitalize()}", "", _fence(r[side]), "", f"rewards: {rw or '-'}", "",
                      f"features: {ft or '-'}"]
        for w in r["rewrites"]:
            rw = ", ".join(f"{_e(m)} {v:.4f}" for m, v in w["rewards"].items() if isinstance(v, (int, float)))
            lines += ["", f"### Rewrite {_e(w['rewrite_id'])} ({_e(w['side'])}, {_e(w['rewriter'])})", "",
                      _fence(w["new_response"] or ""),
                      "", f"similarity: {w['similarity']} · rewards: {rw or '-'}"]
    return "\n".join(lines) + "\n"


def export_pairs(study: Study, pairs: Sequence[str] | EntryFilter, fmt: str | None, path: str | Path,
                 overwrite: bool = False, *, sort: tuple[str, bool] | None = None) -> ExportResult:
    """Write the given pairs (ids, or every pair of a filter) to ``path`` in ``fmt`` (or by extension)."""
    path = Path(path).expanduser()
    fmt = format_for(path, fmt)
    meta_path = Path(str(path) + ".meta.json") if fmt in ("jsonl", "csv") else None
    if not overwrite:
        for p in (path, meta_path):
            if p is not None and p.exists():
                raise ExportExistsError(p)
    if not path.parent.exists():
        raise RmtuiError(f"{path.parent}: no such folder", "Export")
    ids = sorted_ids(study, pairs, sort) if isinstance(pairs, EntryFilter) else list(pairs)
    if not ids:
        what = f"the filter {pairs.describe()}" if isinstance(pairs, EntryFilter) else "the list"
        raise RmtuiError(f"nothing to export: {what} holds no pairs; no file written", "Export")
    recs = export_records(study, ids)
    meta = store_export.study_metadata(study)
    meta["exported_pairs"] = len(recs)
    meta_json = json.dumps(meta, ensure_ascii=False, default=str, indent=1)
    from analysis.report.atomic import clean_leftovers, temp_name, write_text

    clean_leftovers(path, legacy=True)  # what a killed export left (issue 25)
    if meta_path is not None:
        clean_leftovers(meta_path)
    tmp = temp_name(path)  # .NAME.PID.part in the same folder, renamed into place when whole
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for r in recs:
                    fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        elif fmt == "csv":
            pd.DataFrame([_flat(r) for r in recs]).to_csv(tmp, index=False)
        elif fmt == "md":
            tmp.write_text(visible(_markdown(recs, meta)), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = []
            for r in recs:
                d = _flat(r)
                rows.append(d)
            table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"rmtui": meta_json.encode()})
            pq.write_table(table, tmp)
        tmp.replace(path)
        if meta_path is not None:
            write_text(meta_path, meta_json)
    except OSError as e:  # a read-only folder, a full disk: one line naming the file
        raise RmtuiError(f"{e.filename or path}: cannot write the export: {e.strerror or e}", "Export") from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportResult(path, fmt, len(recs), meta_path)
