"""The study file: one DuckDB database per study.

:class:`Study` wraps one connection. Writes go through :meth:`Study.transaction`, so a job killed in
the middle leaves every committed chunk and nothing half-written. DuckDB lets one process hold a
read-write connection; a second process cannot open the file at all while it does (not even
read-only). That case is reported as :class:`StudyLockedError` with the other process's PID.
Inside one process, threads use :meth:`Study.cursor`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pandas as pd

from .. import __version__
from ..errors import StudyError, StudyLockedError
from .schema import MIGRATIONS, SCHEMA_VERSION


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def _check_duckdb_header(path: Path) -> None:
    """Refuse a file that is not a DuckDB database (a dataset passed as the study, say) before DuckDB
    opens it: every DuckDB file has "DUCK" at byte 8."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except IsADirectoryError:
        raise StudyError(f"{path}: a folder, not a study file", "Not a study") from None
    except OSError as e:
        raise StudyError(f"{path}: cannot read: {e.strerror or e}", "Study file") from e
    if head and head[8:12] != b"DUCK":
        raise StudyError(f"{path}: not a DuckDB study file (a study is the .duckdb file `rmtui ingest` or "
                         "`rmtui run` writes; data files go to `rmtui ingest`)", "Not a study")


def _check_folder_writable(path: Path) -> None:
    """A study opened for writing needs its folder writable: DuckDB creates ``<study>.wal`` beside it at
    the first write (a read-only folder failed at the first COMMIT, with a traceback)."""
    import tempfile

    wal = Path(str(path) + ".wal")
    if wal.exists() and not wal.is_file():
        raise StudyError(f"{wal}: is not a file, so DuckDB cannot keep the study's write-ahead log there; "
                         "move it away", "Study file")
    try:
        with tempfile.TemporaryFile(dir=path.parent, prefix=".rmtui-write-check-"):
            pass
    except OSError as e:
        raise StudyError(f"{path.parent}: cannot write in this folder ({e.strerror or e}); a study opened for "
                         f"writing needs it for its write-ahead log {wal.name}. Copy the study to a writable "
                         "folder, or read it without writing (rmtui summary, rmtui export, rmtui explore "
                         "--read-only)", "Study folder is read-only") from e


class Study:
    """One open study file."""

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not self.path.exists():
            if read_only or not create:
                raise StudyError(f"{self.path}: no such study file (make one with `rmtui ingest DATA --study "
                                 f"{self.path}` or `rmtui run`)", "Study not found")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self.path.is_file() and self.path.stat().st_size == 0 and create and not read_only:
            self.path.unlink()  # an empty file (mktemp's, say) is a new study; DuckDB refuses to open it
        else:
            _check_duckdb_header(self.path)
            if not read_only:
                _check_folder_writable(self.path)
        self._lock = threading.RLock()
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            raise _translate_open_error(self.path, e) from e
        except duckdb.Error as e:
            raise StudyError(f"{self.path}: not a readable DuckDB study file: {e}") from e
        self._migrate()
        if not read_only:  # rows a killed job left 'running' (ingests, score_runs): interrupted
            from .jobs import mark_interrupted

            mark_interrupted(self)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            try:
                self.con.close()
            except duckdb.Error:
                pass

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for use in another thread (DuckDB connections are not shared across threads)."""
        return self.con.cursor()

    # -- schema ----------------------------------------------------------------------------------
    def _current_version(self) -> int:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'study'"
        ).fetchone()[0]
        if not exists:
            return 0
        row = self.con.execute("SELECT value FROM study WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        version = self._current_version()
        if version > SCHEMA_VERSION:
            raise StudyError(
                f"{self.path}: schema version {version} is newer than this rmtui understands "
                f"({SCHEMA_VERSION}); upgrade rmtui"
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            others = [r[0] for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
                "ORDER BY 1").fetchall()]
            if others:
                raise StudyError(
                    f"{self.path}: a DuckDB database, but not an rmtui study (it has the tables "
                    f"{', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); rmtui does not add its tables "
                    "to another database: give a new file name", "Not a study")
        if self.read_only:
            raise StudyError(
                f"{self.path}: schema version {version}, this rmtui needs {SCHEMA_VERSION}; "
                "open it once read-write (any rmtui command that writes) to migrate"
            )
        with self.transaction() as cur:
            for stmts in MIGRATIONS[version:]:
                for stmt in stmts:
                    cur.execute(stmt)
            created = cur.execute("SELECT value FROM study WHERE key='created_at'").fetchone()
            if not created:
                cur.execute("INSERT INTO study VALUES ('created_at', ?)", [now().isoformat()])
            cur.execute(
                "INSERT OR REPLACE INTO study VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            cur.execute("INSERT OR REPLACE INTO study VALUES ('rmtui_version', ?)", [__version__])

    # -- transactions and plain SQL ----------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """``with study.transaction() as cur:`` commits on success, rolls back on any exception."""
        if self.read_only:
            raise StudyError(f"{self.path}: opened read-only; cannot write")
        with self._lock:
            cur = self.con.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def execute(self, sql: str, params: list | tuple | None = None) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self.con.execute(sql, params or [])

    def df(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run a query and return a DataFrame (thread-safe: uses its own cursor)."""
        cur = self.con.cursor()
        try:
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        cur = self.con.cursor()
        try:
            row = cur.execute(sql, params or []).fetchone()
        finally:
            cur.close()
        return None if row is None else row[0]

    # -- metadata --------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        v = self.scalar("SELECT value FROM study WHERE key = ?", [key])
        return default if v is None else v

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO study VALUES (?, ?)", [key, value])

    def table_counts(self) -> dict[str, int]:
        names = [r[0] for r in self.con.cursor().execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='main' ORDER BY 1"
        ).fetchall()]
        return {n: int(self.scalar(f'SELECT count(*) FROM "{n}"')) for n in names}


def conform(df: pd.DataFrame, columns: list[str], **fixed: Any) -> pd.DataFrame:
    """A copy of ``df`` with ``fixed`` columns set, missing ``columns`` as NULL, in ``columns`` order."""
    out = df.assign(**fixed) if fixed else df.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out[columns]


def insert_frame(cur: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, columns: list[str],
                 select: str | None = None) -> None:
    """``INSERT INTO table (columns) SELECT ... FROM df`` inside the caller's transaction; no-op when empty.

    ``select`` overrides the select list (e.g. with casts); by default the columns as they are.
    """
    if not len(df):
        return
    name = f"_ins_{table}"
    cur.register(name, df)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {select or cols} FROM {name}")
    finally:
        cur.unregister(name)


def first_row(res):
    """The first row of a result, consuming the rest (DuckDB 2 refuses new work on an unfinished result)."""
    rows = res.fetchall()
    return rows[0] if rows else None


def bulk_insert(study: Study, frames: dict) -> None:
    """Append DataFrames or Arrow tables to tables (columns by name) in one transaction (used by the synthetic study)."""
    with study.transaction() as cur:
        for table, df in frames.items():
            names = df.column_names if hasattr(df, "column_names") else list(df.columns)
            cols = ", ".join(f'"{c}"' for c in names)
            cur.register("_bulk", df)
            cur.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _bulk')
            cur.unregister("_bulk")


_PID_RE = re.compile(r"PID (\d+)")


def _translate_open_error(path: Path, e: Exception) -> Exception:
    msg = str(e)
    if "lock" in msg.lower():
        m = _PID_RE.search(msg)
        who = f"process {m.group(1)}" if m else "another process"
        return StudyLockedError(
            f"{path}: {who} has this study open for writing (DuckDB allows one writer and no "
            "readers beside it). Wait for that job to finish or stop it, then open the study again."
        )
    return StudyError(f"{path}: cannot open: {msg}")


def open_study(path: str | Path, *, read_only: bool = False, create: bool = True) -> Study:
    return Study(path, read_only=read_only, create=create)
