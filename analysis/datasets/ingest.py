"""Ingest sources into a study: read, validate, write in committed chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from analysis.datasets.columnar import PairColumns
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
    n_merged: int = 0           # records judging an item already read (same prompt, same two responses): votes
    n_repeated_items: int = 0   # pairs that hold several records' votes
    n_conflicting: int = 0      # of those, items whose records disagreed
    n_replaced: int = 0         # pairs of an earlier ingest of the source removed first (replace=True)

    @property
    def skipped(self) -> list[Issue]:
        return [i for i in self.issues if i.fatal]

    @property
    def flagged(self) -> list[Issue]:
        return [i for i in self.issues if not i.fatal]


def ingest(study: Study, spec: str, opts: ReadOptions | None = None, *, strict: bool = False,
           progress: Callable[[int], None] | None = None, replace: bool = False,
           columnar: bool = True) -> IngestResult:
    """Read one source into the study. Pairs are committed every ``CHUNK`` rows.

    With ``strict`` the first skipped row raises :class:`InputError` naming file and line; what was
    committed before it stays. A source already in the study under another column map or label
    meaning is refused (its pairs would be added again the other way round); ``replace`` removes the
    source's earlier pairs first. Repeated judgments of one item become one pair with their votes
    (:mod:`analysis.datasets.repeats`). An ingest that fails before storing anything leaves no trace.

    Sources the columnar pass reads (:mod:`analysis.datasets.columnar`: JSON lines, Parquet and SQL in
    the common shapes) are read a batch at a time and give the same rows; ``columnar=False`` reads
    every record through the record path (the reference the tests compare it with).
    """
    from analysis.textsafe import check_utf8_name

    check_utf8_name(spec)  # before anything is stored: the study cannot hold a non-UTF-8 name
    opts = opts or ReadOptions()
    res = IngestResult(source=spec)
    options = {k: v for k, v in vars(opts).items() if v not in (None, {}, [])}
    options["strict"] = strict
    prior = store_pairs.source_ingests(study, spec, opts.hf_split, opts.hf_data_dir)
    if len(prior):
        if replace:
            res.n_replaced = store_pairs.delete_ingest_pairs(study, list(prior["ingest_id"]))
        else:
            _refuse_other_mapping(spec, prior, options)
    ingest_id = store_pairs.start_ingest(study, spec, options)
    buf: list[Pair] = []
    pending_issues: list[Issue] = []
    status = "failed"

    shape = opts.shape
    attr_seen: dict[str, set] = {}
    pair_source: list[str] = []

    def flush() -> None:
        res.n_added += store_pairs.add_pairs(study, buf, ingest_id)
        if shape is not None and shape.attrs:
            res.n_attr_values += _write_attributes(study, buf, res, attr_seen, shape)
        store_pairs.add_issues(study, pending_issues, ingest_id)
        if progress:
            progress(len(buf))
        buf.clear()
        pending_issues.clear()

    items = None
    if columnar:
        from analysis.datasets.columnar import columnar_items

        items = columnar_items(spec, opts, strict=strict)
    if items is None:
        items = _items(spec, opts)
    writer: _ColumnWriter | None = None
    try:
        for item in items:
            if isinstance(item, PairColumns):
                flush()
                if not pair_source:
                    pair_source.append(item.source)
                res.n_read += item.n
                res.n_ties += item.n_ties
                if writer is None:
                    writer = _ColumnWriter(study, ingest_id, known_new=not len(prior) or replace)
                writer.put(item)
                if progress:
                    progress(item.n)
                continue
            if isinstance(item, Issue):
                res.issues.append(item)
                pending_issues.append(item)
                if strict and item.fatal:
                    flush()
                    raise InputError(item.describe() + (f"  [{item.excerpt}]" if item.excerpt else ""),
                                     "Bad input (--strict)")
                continue
            res.n_read += 1
            if not pair_source:
                pair_source.append(item.source)
            if item.extra.get("human_tie"):
                res.n_ties += 1
            elif (item.extra.get("annotator_agreement") or 1.0) < 1.0:  # a winner, but not every vote for it
                res.n_split_votes += 1
            buf.append(item)
            if len(buf) >= CHUNK:
                flush()
        flush()
        if writer is not None:
            res.n_added += writer.close()
            writer = None
        if pair_source and shape is not None:
            _merge_repeats(study, pair_source[0], ingest_id, res)
        status = "done"
    finally:
        if writer is not None:  # stopped early: what the writer committed counts, its error is not raised over
            res.n_added += writer.stop()
        if shape is not None and shape.attrs and res.featurizer:  # also after --strict stopped: values written
            _register_attributes(study, res.featurizer, shape, attr_seen)  # so far get their definitions
        if status != "done" and not res.n_added and not res.issues and not res.n_replaced:
            store_pairs.drop_ingest(study, ingest_id)  # failed before storing anything: the study as it was
        else:
            store_pairs.finish_ingest(study, ingest_id, res.n_read, res.n_added, len(res.issues), status)
            if res.n_merged or res.n_replaced or res.n_repeated_items:
                store_pairs.record_ingest_merges(study, ingest_id, n_merged=res.n_merged,
                                                 n_repeated_items=res.n_repeated_items,
                                                 n_conflicting=res.n_conflicting, n_replaced=res.n_replaced)
    return res


class _ColumnWriter:
    """Writes the columnar pass's batches in a thread of its own, so the next batch is built while
    DuckDB (which releases the GIL) inserts this one; at most one batch waits, so memory stays at about
    two batches. Each batch is its own transaction, as the record path's chunks are: a killed ingest
    keeps every batch committed before it, and reading the source again adds the rest."""

    def __init__(self, study: Study, ingest_id: int, known_new: bool = True) -> None:
        import queue
        import threading

        self.study, self.ingest_id = study, ingest_id
        self.known_new = known_new  # no earlier ingest of the source: try plain inserts first
        self.added = 0
        self.error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=1)
        self._bulk = store_pairs.bulk_load(study)
        self._bulk.__enter__()
        self._thread = threading.Thread(target=self._run, name="rmtui-ingest-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    n = store_pairs.add_pair_columns(self.study, item.pairs, item.texts, self.ingest_id,
                                                     known_new=self.known_new)
                    self.known_new = self.known_new and n == item.n  # some were stored: resuming
                    self.added += n
                except BaseException as e:  # noqa: BLE001 - raised in the reading thread by put/close
                    self.error = e

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self._q.put(item)

    def stop(self) -> int:
        """Wait for the batch in hand, end the thread and the bulk load; the pairs it added."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._bulk.__exit__(None, None, None)
        return self.added

    def close(self) -> int:
        added = self.stop()
        if self.error is not None:
            raise self.error
        return added


# what decides how a source's records become pairs (a change makes pairs the other way round)
_MAPPING_KEYS = ("fmt", "mapping", "shape")


def _mapping_of(options: dict) -> dict:
    o = json.loads(json.dumps(options, sort_keys=True, default=str))
    return {k: o.get(k) for k in _MAPPING_KEYS}


def _refuse_other_mapping(spec: str, prior, options: dict) -> None:
    now = _mapping_of(options)
    for row in prior.itertuples(index=False):
        before = _mapping_of(json.loads(row.options or "{}"))
        if before != now:
            from analysis.textsafe import visible_line

            def show(m: dict) -> str:
                return visible_line(m.get("shape") or m.get("mapping") or "the default columns")[:300]

            raise InputError(
                f"{visible_line(spec)}: already in this study ({row.pairs:,} pairs, ingest {row.ingest_id}) read "
                f"with another column map or label meaning ({show(before)}; now {show(now)}); reading it again "
                "would add its pairs a second time, some the other way round. Add --replace to replace that "
                "source's pairs with this reading, or use another --study", "Source already ingested")


def _merge_repeats(study: Study, source: str, ingest_id: int, res: IngestResult) -> None:
    """Fold repeated judgments of one item into one pair with its votes; recount ties and split votes."""
    from analysis.datasets.repeats import plan_merges

    members = store_pairs.repeat_members(study, source)
    if not len(members):
        return
    plan = plan_merges(members, ingest_id)
    if not plan.deletes:
        return
    store_pairs.merge_pairs(study, plan.updates, plan.deletes)
    new_deleted = int(members[members["pair_id"].isin(plan.deletes)]["ingest_id"].eq(ingest_id).sum())
    res.n_added -= new_deleted
    res.n_merged, res.n_repeated_items, res.n_conflicting = plan.n_merged, plan.n_repeated_items, plan.n_conflicting
    counts = store_pairs.ingest_label_counts(study, ingest_id)
    res.n_ties, res.n_split_votes = counts["ties"], counts["split_votes"]


def _items(spec: str, opts: ReadOptions):
    if spec.startswith("sql:"):
        from analysis.store.sources import sql_records

        return read_records(lambda: sql_records(spec[4:]), "sql", opts)
    return read_pairs(spec, opts)


def read_records(records, source: str, opts: ReadOptions):
    """Pairs and issues from an iterable factory of dict records (the SQL path): record N is row N."""
    from dataclasses import replace

    from analysis.datasets.readers import _read_frame_rows
    from analysis.datasets.shape_pairs import LabelScan

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
