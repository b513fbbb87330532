"""Ingest sources into a study: read, validate, write in committed chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from analysis.datasets.readers import Issue, Pair, ReadOptions, read_pairs
from analysis.errors import InputError
from analysis.store import Study
from analysis.store import pairs as store_pairs

CHUNK = 2000


@dataclass
class IngestResult:
    source: str
    n_read: int = 0
    n_added: int = 0
    issues: list[Issue] = field(default_factory=list)
    n_ties: int = 0          # pairs the humans called a tie (stored, flagged human_tie)
    n_split_votes: int = 0   # pairs with a winner whose annotators did not all vote for it (ties not counted)
    n_attr_values: int = 0   # per-response attribute values stored as features
    featurizer: str | None = None

    @property
    def skipped(self) -> list[Issue]:
        return [i for i in self.issues if i.fatal]

    @property
    def flagged(self) -> list[Issue]:
        return [i for i in self.issues if not i.fatal]


def ingest(study: Study, spec: str, opts: ReadOptions | None = None, *, strict: bool = False,
           progress: Callable[[int], None] | None = None) -> IngestResult:
    """Read one source into the study. Pairs are committed every ``CHUNK`` rows.

    With ``strict`` the first skipped row raises :class:`InputError` naming file and line; what was
    committed before it stays.
    """
    from analysis.textsafe import check_utf8_name

    check_utf8_name(spec)  # before anything is stored: the study cannot hold a non-UTF-8 name
    opts = opts or ReadOptions()
    res = IngestResult(source=spec)
    options = {k: v for k, v in vars(opts).items() if v not in (None, {}, [])}
    options["strict"] = strict
    ingest_id = store_pairs.start_ingest(study, spec, options)
    buf: list[Pair] = []
    pending_issues: list[Issue] = []
    status = "failed"

    shape = opts.shape
    attr_seen: dict[str, set] = {}

    def flush() -> None:
        res.n_added += store_pairs.add_pairs(study, buf, ingest_id)
        if shape is not None and shape.attrs:
            res.n_attr_values += _write_attributes(study, buf, res, attr_seen, shape)
        store_pairs.add_issues(study, pending_issues, ingest_id)
        if progress:
            progress(len(buf))
        buf.clear()
        pending_issues.clear()

    try:
        for item in _items(spec, opts):
            if isinstance(item, Issue):
                res.issues.append(item)
                pending_issues.append(item)
                if strict and item.fatal:
                    flush()
                    raise InputError(item.describe() + (f"  [{item.excerpt}]" if item.excerpt else ""),
                                     "Bad input (--strict)")
                continue
            res.n_read += 1
            if item.extra.get("human_tie"):
                res.n_ties += 1
            elif (item.extra.get("annotator_agreement") or 1.0) < 1.0:  # a winner, but not every vote for it
                res.n_split_votes += 1
            buf.append(item)
            if len(buf) >= CHUNK:
                flush()
        flush()
        status = "done"
    finally:
        if shape is not None and shape.attrs and res.featurizer:  # also after --strict stopped: values written
            _register_attributes(study, res.featurizer, shape, attr_seen)  # so far get their definitions
        store_pairs.finish_ingest(study, ingest_id, res.n_read, res.n_added, len(res.issues), status)
    return res


def _items(spec: str, opts: ReadOptions):
    if spec.startswith("sql:"):
        from analysis.store.sources import sql_records

        return read_records(lambda: sql_records(spec[4:]), "sql", opts)
    return read_pairs(spec, opts)


def read_records(records, source: str, opts: ReadOptions):
    """Pairs and issues from an iterable factory of dict records (the SQL path): record N is row N."""
    from dataclasses import replace

    from analysis.datasets.readers import _read_frame_rows
    from analysis.datasets.shapes import LabelScan

    subset = opts.subset or "sql"
    split = opts.split or "unknown"
    if opts.shape is not None and opts.shape.needs_scan():
        for _ in _read_frame_rows(records(), source, replace(opts, shape=LabelScan(opts.shape)), subset, split,
                                  subset):
            pass
        opts.shape.resolve(source)
    yield from _read_frame_rows(records(), source, opts, subset, split, subset)


def _write_attributes(study: Study, pairs: list[Pair], res: IngestResult, seen: dict, shape) -> int:
    """Per-response attributes of the pairs as features of their texts (featurizer named after the dataset)."""
    import pandas as pd

    from analysis.datasets.shapes import featurizer_name
    from analysis.store import features as store_features

    rows = []
    for p in pairs:
        for tid, attrs in ((p.chosen_text_id, p.chosen_attrs), (p.rejected_text_id, p.rejected_attrs)):
            for name, v in attrs.items():
                rows.append((tid, name, v))
                vals = seen.setdefault(name, set())
                if len(vals) <= 3:
                    vals.add(float(v))
        if res.featurizer is None:
            res.featurizer = featurizer_name(shape, p.dataset)
    if not rows or res.featurizer is None:
        return 0
    return store_features.write_features(study, res.featurizer, pd.DataFrame(rows, columns=["text_id", "name", "value"]))


def _register_attributes(study: Study, featurizer: str, shape, seen: dict) -> None:
    from analysis.features.base import FeatureDef
    from analysis.store import features as store_features

    defs = []
    for at in shape.attrs:
        vals = seen.get(at.name, set())
        kind = "binary" if vals and vals <= {0.0, 1.0} else "continuous"
        defs.append(FeatureDef(at.name, kind, at.role, False,
                               f"from the dataset ({at.a or at.item} / {at.b or at.item}), imported at ingest"))
    store_features.register_featurizer(study, featurizer, "dataset-1", {"shape": shape.to_dict()}, defs)
