"""The study file: one DuckDB database per study, and how processes share it.

:class:`Study` wraps the connection. Writes go through :meth:`Study.transaction`, so a job killed in
the middle leaves every committed chunk and nothing half-written. Inside one process, threads use
:meth:`Study.cursor` (one connection, a cursor per thread).

Sharing a study between processes (the app in one tmux pane, ``rmtui run`` in another)
-------------------------------------------------------------------------------------
DuckDB locks the whole file: while one process has it open read-write, no other process can open it,
not even read-only; several read-only processes can share it. So a process that keeps its
connection open shuts everyone else out. A study opened with ``shared=True`` does not: it holds the
file only while it works on it.

- :meth:`Study.hold` (re-entrant, counted across threads) opens a connection if none is open and
  closes it when the last hold ends: open, work, commit, close. Every method of :class:`Study`
  (``transaction``, ``df``, ``scalar``, ``meta``...) runs inside a hold, so a scoring job that calls
  ``store.add_scores`` per chunk needs the file only while a chunk is written, not while the model
  computes the next one.
- Opening retries with back-off (5 ms doubling to 50 ms, jittered) while another process holds
  the lock, up to ``lock_timeout`` seconds (default 10, ``$RMTUI_LOCK_TIMEOUT``), and only then
  raises :class:`StudyLockedError`. So a tag written by the app waits for the job's chunk commit
  (tens of ms), and the job's next commit waits for the app's read; nothing is lost and neither
  side fails as long as the other holds the file for short moments.
- In shared mode, code must touch ``con``/``cursor()`` inside a hold. Used outside one (a legacy
  path), the connection opened is "sticky": it stays open until :meth:`Study.release`, so it is
  never closed under a cursor still in use; the price is that the file stays locked until then.
- ``linger`` keeps an idle connection open after the last hold: the app 0.3 s, so a burst of reads
  (scrolling) pays one open (an open/close of DuckDB costs ~100 ms on a loaded 2-core machine,
  mostly its thread pool starting and stopping); a job ``None``: open until another process waits
  for the file, so a job alone pays one open for its run, as before. A thread looks every 20 ms
  (a stat of the waiting flag) while the connection is idle and closes it when someone waits.
- DuckDB's lock has no queue (a process that closes and reopens at once could win every time), so
  a process that waits for the lock writes its pid to ``<study>.waiting``; a shared study that sees
  another's fresh flag closes at the end of its hold (or at once, when idle) and, before it opens
  again, lets the waiter go first (up to 0.5 s). A stale flag (its process died) is ignored after 1 s.
- ``shared=False`` (the default, and what one-shot commands use) keeps one connection for the
  Study's life, as before; its open retries on the lock the same way.

A read-only file (no write bit in its mode, or not writable for this user) is opened read-only by
the app by itself: see :func:`writable`. Root can write any file (``os.access`` says yes to a
chmod 444 file), so the mode bits are checked too. The cost of an open/close per chunk is measured by
``benchmarks/bench_shared_study.py``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import random
import re
import stat
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pandas as pd

from analysis import __version__
from analysis.errors import StudyError, StudyLockedError
from analysis.store.schema import MIGRATIONS, SCHEMA_VERSION
from analysis.store.files import (  # noqa: F401  (moved there; kept importable from here)
    _check_duckdb_header, _check_folder_writable)


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


LOCK_TIMEOUT_ENV = "RMTUI_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 10.0


def default_lock_timeout() -> float:
    """Seconds to wait for another process's lock: ``$RMTUI_LOCK_TIMEOUT`` or 10."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        v = float(raw)
    except ValueError:
        raise StudyError(f"{LOCK_TIMEOUT_ENV}={raw!r}: expected a number of seconds", "Bad setting") from None
    if not v >= 0:  # also refuses nan
        raise StudyError(f"{LOCK_TIMEOUT_ENV}={raw!r}: must be 0 or more seconds", "Bad setting")
    return v


def writable(path: str | Path) -> bool:
    """Whether the study file may be opened for writing: it has a write bit in its mode and this user
    may write it. Root may write every file (``os.access`` says yes to a chmod 444 file), so the mode
    bits are what says the owner made it read-only. A missing file is writable if its folder is."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return os.access(p.parent if str(p.parent) else ".", os.W_OK)
    except OSError:
        return False
    return bool(st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(p, os.W_OK)


def _is_lock_error(e: Exception) -> bool:
    return "lock" in str(e).lower()


YIELD_S = 0.5             # how long a shared study lets a waiting process go first before it opens
MAX_LINGER_OPEN_S = 1.0   # a lingering connection is closed at the end of a hold after this long open
_WAIT_FRESH_S = 1.0       # a waiting flag older than this is stale (its process gave up or died)


def _wait_flag(path: Path) -> Path:
    return path.with_name(path.name + ".waiting")


def _waiter(path: Path) -> int | None:
    """The pid of another process waiting for the file (a fresh flag), else None. One stat."""
    f = _wait_flag(path)
    try:
        st = f.stat()
    except OSError:
        return None
    if time.time() - st.st_mtime > _WAIT_FRESH_S:
        return None
    try:
        pid = int(f.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and pid != os.getpid() else None


def _flag_waiting(path: Path) -> bool:
    """Say that this process waits for the file (refreshes the flag's time). False where it cannot
    (a read-only folder): waiting still works, only without priority."""
    try:
        _wait_flag(path).write_text(str(os.getpid()))
        return True
    except OSError:
        return False


def _unflag_waiting(path: Path) -> None:
    f = _wait_flag(path)
    try:
        if f.read_text().strip() == str(os.getpid()):
            f.unlink()
    except (OSError, ValueError):
        pass


def _yield_to_waiter(path: Path, limit: float) -> float:
    """Before opening: if another process waits for the file, give it up to ``limit`` s to take it.
    Returns the seconds waited."""
    t0 = time.monotonic()
    end = t0 + limit
    while _waiter(path) is not None and time.monotonic() < end:
        time.sleep(0.01)
    return time.monotonic() - t0


class Study:
    """One study file, held for its life (``shared=False``) or only while in use (``shared=True``)."""

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True,
                 shared: bool = False, lock_timeout: float | None = None,
                 linger: float | None = 0.0) -> None:
        from analysis.textsafe import check_utf8_name

        check_utf8_name(path, "study file")
        self.path = Path(path)
        self.read_only = read_only
        self.shared = shared
        # shared mode: seconds an idle connection stays open after the last hold ends (a burst of reads,
        # a scroll, pays one open); 0 closes at once; None: until another process waits for the file
        self.linger = None if linger is None else max(0.0, float(linger))
        self._watcher: threading.Thread | None = None
        self._idle_since = 0.0
        self._generation = 0
        self._opened_at = 0.0
        self.lock_timeout = default_lock_timeout() if lock_timeout is None else float(lock_timeout)
        self.n_opens = 0       # connections opened (shared mode: one per hold that found none open)
        self.n_lock_waits = 0  # retries because another process held the lock
        self.lock_wait_s = 0.0
        # precomputed results (analysis.store.precomputed) the steps may take after a verified sample
        self.precomputed = None
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
        self._lock = threading.RLock()      # serializes transactions (as before)
        self._conlock = threading.RLock()   # guards _con, _holds, _sticky
        self._con: duckdb.DuckDBPyConnection | None = None
        self._holds = 0
        self._sticky = False
        self._closed = False
        try:
            with self.hold():
                self._migrate()
                if not read_only:  # rows a killed job left 'running' (ingests, score_runs): interrupted
                    from analysis.store.jobs import mark_interrupted

                    mark_interrupted(self)
        except duckdb.Error as e:  # a file cut short fails at its first read, not at connect
            self.close()
            if _is_truncated(e):
                raise _translate_open_error(self.path, e) from None
            raise

    # -- connection --------------------------------------------------------------------------------
    def _connect(self, timeout: float | None = None) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying with back-off while another process holds DuckDB's lock.

        DuckDB's lock has no queue: a process that closes and reopens at once (the app answering
        keys) could win every time. So a process that waits says so in ``<study>.waiting`` (its pid);
        a shared study that sees another's fresh flag closes at once after its hold (no linger) and
        lets the waiter go first before it opens again (up to ``YIELD_S``)."""
        timeout = self.lock_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self.shared:
            self.lock_wait_s += _yield_to_waiter(self.path, min(YIELD_S, timeout))
        delay = 0.005
        flagged = False
        try:
            while True:
                try:
                    con = duckdb.connect(str(self.path), read_only=self.read_only)
                except duckdb.IOException as e:
                    left = deadline - time.monotonic()
                    if _is_lock_error(e) and left > 0:
                        flagged = _flag_waiting(self.path) or flagged
                        pause = min(delay * (0.5 + random.random()), left)
                        self.n_lock_waits += 1
                        self.lock_wait_s += pause
                        time.sleep(pause)
                        delay = min(delay * 2, 0.05)
                        continue
                    raise _translate_open_error(self.path, e, timeout) from e
                except duckdb.Error as e:
                    raise StudyError(f"{self.path}: not a readable DuckDB study file: {e}") from e
                self.n_opens += 1
                self._opened_at = time.monotonic()
                return con
        finally:
            if flagged:
                _unflag_waiting(self.path)

    def _disconnect(self) -> None:
        con, self._con, self._sticky = self._con, None, False
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The open connection (opened on demand). In shared mode use it inside :meth:`hold`; outside
        one it stays open ("sticky") until :meth:`release`."""
        with self._conlock:
            if self._closed:
                raise StudyError(f"{self.path}: the study was closed", "Study file")
            if self._con is None:
                self._con = self._connect()
                self._sticky = self._holds == 0
            return self._con

    @contextlib.contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Keep the file open for the block (re-entrant, counted across threads). In shared mode the
        connection is closed, and the file free for other processes, when the last hold ends.
        ``timeout``: seconds to wait for another process's lock (default: ``lock_timeout``)."""
        with self._conlock:
            if self._closed:
                raise StudyError(f"{self.path}: the study was closed", "Study file")
            if self._con is None:
                self._con = self._connect(timeout)
            self._holds += 1
            self._generation += 1
            con = self._con
        try:
            yield con
        finally:
            with self._conlock:
                self._holds -= 1
                if self._holds == 0 and self.shared and not self._sticky:
                    if self.linger != 0 and not self._closed and _waiter(self.path) is None and (
                            self.linger is None or time.monotonic() - self._opened_at < MAX_LINGER_OPEN_S):
                        self._idle_since = time.monotonic()
                        self._watch()
                    else:  # no linger, another process waits, or open long enough: let others in
                        self._disconnect()

    def _watch(self) -> None:
        """While a lingering connection is idle, look every 20 ms (a stat) whether another process
        waits for the file, and close it then, or when the linger ran out."""
        if self._watcher is not None and self._watcher.is_alive():
            return

        def run() -> None:
            while True:
                time.sleep(0.02)
                with self._conlock:
                    if self._con is None or self._closed:
                        self._watcher = None
                        return
                    if self._holds or self._sticky:
                        continue
                    expired = self.linger is not None and time.monotonic() - self._idle_since >= self.linger
                    if expired or _waiter(self.path) is not None:
                        self._disconnect()
                        self._watcher = None
                        return

        self._watcher = threading.Thread(target=run, name="rmtui-study-linger", daemon=True)
        self._watcher.start()

    def release(self) -> None:
        """Shared mode: close the connection now if no hold is active (else when the last one ends),
        so other processes can open the file. Call it only where no cursor of this study is in use."""
        with self._conlock:
            if not self.shared:
                return
            self._sticky = False
            if self._holds == 0:
                self._disconnect()

    @property
    def is_open(self) -> bool:
        """Whether this process holds the file now (a connection is open)."""
        return self._con is not None

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        with self._conlock:
            self._closed = True
            self._disconnect()

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
        with self.hold() as con, self._lock:
            cur = con.cursor()
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
        with self.hold() as con:
            cur = con.cursor()
            try:
                return cur.execute(sql, params or []).df()
            finally:
                cur.close()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        with self.hold() as con:
            cur = con.cursor()
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
        with self.hold() as con:
            names = [r[0] for r in con.cursor().execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='main' ORDER BY 1"
            ).fetchall()]
            return {n: int(self.scalar(f'SELECT count(*) FROM "{n}"')) for n in names}


_CHANGE_TABLES = ("pairs", "scores", "models", "score_runs", "features", "fits")


def change_signature(study: Study, timeout: float | None = None) -> tuple[int, ...]:
    """Row counts of the tables a job writes (pairs, scores, models, runs, features, fits): when another
    process commits, this changes; the app's own tags and notes leave it alone. ``timeout``: seconds
    to wait for the lock (raises :class:`StudyLockedError` after)."""
    sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in _CHANGE_TABLES)
    with study.hold(timeout) as con:
        cur = con.cursor()
        try:
            row = cur.execute(sql).fetchone()
        finally:
            cur.close()
    return tuple(int(x) for x in row)


def file_signature(path: str | Path) -> tuple[int, int, int, int]:
    """(mtime_ns, size) of the study file and of its WAL: changes when any process commits and
    closes. Costs a stat, takes no lock."""
    out: list[int] = []
    for p in (Path(path), Path(str(path) + ".wal")):
        try:
            st = p.stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)  # type: ignore[return-value]


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


def _is_truncated(e: Exception) -> bool:
    m = str(e).lower()
    return "could not read enough bytes" in m or "not enough bytes" in m


def translate_duckdb_error(e: Exception) -> Exception | None:
    """A DuckDB error that escaped (the CLI's last guard) as a StudyError one-liner, where it is one
    rmtui can explain (a study file cut short); else None."""
    if _is_truncated(e):
        m = re.search(r'file "([^"]+)"', str(e))
        return _translate_open_error(Path(m.group(1)) if m else Path("the study"), e)
    return None


def _translate_open_error(path: Path, e: Exception, waited: float = 0.0) -> Exception:
    msg = str(e)
    if _is_lock_error(e):
        m = _PID_RE.search(msg)
        who = f"process {m.group(1)}" if m else "another process"
        return StudyLockedError(
            f"{path}: {who} has this study open for writing (DuckDB allows one writer and no "
            f"readers beside it; waited {waited:g} s, ${LOCK_TIMEOUT_ENV} sets how long). rmtui's own "
            "jobs and app hold it only for moments; a process that keeps it open (an older rmtui, a "
            "duckdb shell) must finish or be stopped first."
        )
    if _is_truncated(e):
        try:
            size = f" ({path.stat().st_size:,} bytes)"
        except OSError:
            size = ""
        return StudyError(f"{path}: the study file is cut short{size}: it ends before the data it says it holds "
                          "(a full disk, or a copy or download that was interrupted). Restore it from a backup or "
                          "copy it again; or rebuild it (rmtui ingest / rmtui run)", "Study file is truncated")
    return StudyError(f"{path}: cannot open: {msg}")


def open_study(path: str | Path, *, read_only: bool = False, create: bool = True, shared: bool = False,
               lock_timeout: float | None = None, linger: float | None = 0.0) -> Study:
    """Open (or create) a study. ``shared=True``: hold the file only while working (see the module
    docstring); ``lock_timeout``: seconds to wait for another process's lock (default 10);
    ``linger``: shared mode, seconds an idle connection stays open before it is closed (None: until
    another process waits for the file, what a job uses)."""
    return Study(path, read_only=read_only, create=create, shared=shared, lock_timeout=lock_timeout,
                 linger=linger)
