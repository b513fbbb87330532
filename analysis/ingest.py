"""Ingest sources into a study: read, validate, write in committed chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .data import Issue, Pair, ReadOptions, read_pairs
from .errors import InputError
from .store import Study
from .store import pairs as store_pairs

CHUNK = 2000


@dataclass
class IngestResult:
    source: str
    n_read: int = 0
    n_added: int = 0
    issues: list[Issue] = field(default_factory=list)

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
    opts = opts or ReadOptions()
    res = IngestResult(source=spec)
    options = {k: v for k, v in vars(opts).items() if v not in (None, {}, [])}
    options["strict"] = strict
    ingest_id = store_pairs.start_ingest(study, spec, options)
    buf: list[Pair] = []
    pending_issues: list[Issue] = []
    status = "failed"

    def flush() -> None:
        res.n_added += store_pairs.add_pairs(study, buf, ingest_id)
        store_pairs.add_issues(study, pending_issues, ingest_id)
        if progress:
            progress(len(buf))
        buf.clear()
        pending_issues.clear()

    try:
        for item in read_pairs(spec, opts):
            if isinstance(item, Issue):
                res.issues.append(item)
                pending_issues.append(item)
                if strict and item.fatal:
                    flush()
                    raise InputError(item.describe() + (f"  [{item.excerpt}]" if item.excerpt else ""),
                                     "Bad input (--strict)")
                continue
            res.n_read += 1
            buf.append(item)
            if len(buf) >= CHUNK:
                flush()
        flush()
        status = "done"
    finally:
        store_pairs.finish_ingest(study, ingest_id, res.n_read, res.n_added, len(res.issues), status)
    return res
