"""Writing outputs atomically (issue 25): a file or a folder is built under a temporary name in the
same folder and renamed into place when whole, so a kill leaves the old output or none, never half
of one. Temporary names carry the writer's pid (``.NAME.PID.part``); leftovers of a writer that is
gone are removed when the next writer starts (:func:`clean_leftovers`)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_INNER = ".rmtui-report"  # the staging folder inside an existing report folder


def temp_name(path: Path) -> Path:
    """The temporary name of ``path`` for this process: ``.NAME.PID.part`` in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink()
    except OSError:
        pass


def clean_leftovers(path: Path, *, legacy: bool = False) -> list[Path]:
    """Remove the temporary files/folders that writers of ``path`` killed before they finished left
    (``.NAME.PID.part`` beside it, the old ``NAME.part`` of earlier exports, and a report folder's inner
    staging folders); those of a writer still running are kept. ``legacy``: also ``NAME.part`` (the
    temporary name exports used before). Returns what was removed."""
    path = Path(path)
    removed: list[Path] = []
    pat = re.compile(r"^\." + re.escape(path.name) + r"\.(\d+)\.part$")
    places = [(path.parent, pat)]
    if path.is_dir():
        places.append((path, re.compile(r"^" + re.escape(_INNER) + r"\.(\d+)\.(?:part|old)$")))
    for folder, rx in places:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for e in entries:
            m = rx.match(e.name)
            if m and not _alive(int(m.group(1))):
                _remove(e)
                removed.append(e)
    old = path.with_name(path.name + ".part")
    if legacy and old.is_file():
        _remove(old)
        removed.append(old)
    return removed


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text)``, atomically."""
    tmp = temp_name(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)


def staging_dir(final: Path) -> Path:
    """A new, empty folder to build ``final`` in: beside it when it does not exist yet (published by one
    rename), inside it when it does (its files are replaced one rename each)."""
    final = Path(final)
    stage = final / f"{_INNER}.{os.getpid()}.part" if final.is_dir() else temp_name(final)
    _remove(stage)
    stage.mkdir(parents=not final.is_dir() and not final.parent.exists())
    return stage


def publish_dir(stage: Path, final: Path) -> None:
    """Move what ``stage`` holds to ``final``: one rename for a new folder; for an existing one each
    file is replaced by a rename and each sub-folder swapped (the old one removed afterwards)."""
    if stage.parent != final:
        os.rename(stage, final)
        return
    for item in sorted(stage.iterdir()):
        dest = final / item.name
        if item.is_dir():
            old = final / f"{_INNER}.{os.getpid()}.old"
            if dest.exists():
                os.rename(dest, old)
            os.rename(item, dest)
            _remove(old)
        else:
            os.replace(item, dest)
    stage.rmdir()


def discard(stage: Path) -> None:
    """Remove a staging folder after a failure."""
    _remove(stage)
