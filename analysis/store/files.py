"""Checks of a study file before DuckDB opens it: a file that is not a DuckDB database (or was cut
short), a folder that cannot be written. Each a one-line StudyError naming the file. Moved out of ``core``.
"""

from __future__ import annotations

from pathlib import Path
import duckdb
from analysis.errors import StudyError


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
