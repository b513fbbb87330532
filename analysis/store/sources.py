"""Reading a dataset with SQL (``rmtui ingest --sql``): DuckDB's readers (read_json, read_csv, read_parquet)
on an in-memory connection of its own, never the study's. Records come back as dicts in batches.

Only this package runs SQL; the readers in analysis/datasets/ingest.py turn the records into pairs.
"""

from __future__ import annotations

import math
from typing import Iterator

import duckdb

from analysis.errors import InputError

# what a query must return: one of these column sets (plus optional subset, split, attribute columns)
STANDARD_SHAPES = (("chosen", "rejected"), ("a", "b", "label"), ("a", "b", "score_a", "score_b"),
                   ("completions",))
BATCH = 20_000


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:  # pragma: no cover - older duckdb
        pass
    return con


def sql_columns(sql: str) -> list[str]:
    """The columns a query returns (runs it with LIMIT 0); errors as one line."""
    con = _connect()
    try:
        rel = con.sql(sql)
        if rel is None:
            raise InputError("--sql: the statement returns no rows (give a SELECT)", "Bad query")
        return list(rel.columns)
    except duckdb.Error as e:
        raise InputError(f"--sql: {str(e).splitlines()[0]}", "Bad query") from e
    finally:
        con.close()


def check_columns(cols: list[str]) -> None:
    have = set(cols)
    for need in STANDARD_SHAPES:
        if set(need) <= have:
            return
    if "a" in have or "b" in have:
        missing = [c for c in ("a", "b") if c not in have] or ["label (or score_a and score_b)"]
    else:
        missing = [c for c in ("chosen", "rejected") if c not in have]
    raise InputError(
        f"--sql: the query returns {', '.join(cols) or 'no columns'}; missing column {', '.join(missing)}. "
        "Return prompt/chosen/rejected, or a/b/label, or a/b/score_a/score_b (rename with AS)",
        "Bad query")


def sql_records(sql: str) -> Iterator[dict]:
    """Every row of the query as a dict (NaN floats as None), fetched in batches."""
    for batch in sql_batches(sql):
        for row in batch.to_pylist():
            for k, v in row.items():
                if isinstance(v, float) and math.isnan(v):
                    row[k] = None
            yield row


def sql_batches(sql: str, size: int = BATCH):
    """Every row of the query as Arrow record batches of ``size`` rows (the columnar ingest reads these;
    :func:`sql_records` turns them into dicts); errors as one line naming the query's problem."""
    con = _connect()
    try:
        try:
            rel = con.sql(sql)
        except duckdb.Error as e:
            raise InputError(f"--sql: {str(e).splitlines()[0]}", "Bad query") from e
        if rel is None:
            raise InputError("--sql: the statement returns no rows (give a SELECT)", "Bad query")
        try:
            reader = rel.to_arrow_reader(size) if hasattr(rel, "to_arrow_reader") else rel.fetch_arrow_reader(size)
        except duckdb.Error as e:
            raise InputError(f"--sql: {str(e).splitlines()[0]}", "Bad query") from e
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (duckdb.Error, Exception) as e:  # arrow errors while reading the file
                raise InputError(f"--sql: {str(e).splitlines()[0]}", "Bad query") from e
            yield batch
    finally:
        con.close()
