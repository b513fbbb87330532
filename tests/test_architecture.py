"""The layering: the import-linter contracts of pyproject.toml, and SQL only in analysis/store.

import-linter checks imports (analysis never imports rmtui/textual/rich; only analysis.store imports
duckdb; screens and widgets never import pandas/statsmodels/duckdb). SQL run through a Study
(``study.df("SELECT ...")``) needs no import, so a second check reads the code: a call of
``df``/``scalar``/``execute``/``sql`` whose first argument is SQL text, outside analysis/store.
Each check is also run on a planted violation, to show it can fail.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

SQL_METHODS = {"df", "scalar", "execute", "executemany", "sql", "query"}
SQL_RE = re.compile(r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|COPY|PRAGMA)\b", re.I)


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [str(LINT)] if LINT.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run(cmd + ["--no-cache", "--config", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy_tree(dst: Path) -> Path:
    """The two packages' Python files and pyproject.toml, copied (no weights, no data)."""
    for pkg in ("analysis", "rmtui"):
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=lambda d, names: [
            n for n in names if not (n.endswith(".py") or (Path(d) / n).is_dir()) or n == "__pycache__"])
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_import_contracts_are_kept():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"Contracts: 4 kept, 0 broken", r.stdout), r.stdout


def test_import_contracts_fail_on_planted_violations(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "analysis" / "planted_ui.py").write_text("from rich.text import Text\n")
    (root / "analysis" / "planted_sql.py").write_text("import duckdb\n")
    (root / "rmtui" / "screens" / "planted_stats.py").write_text("import pandas as pd\n")
    r = _lint(root)
    assert r.returncode != 0
    out = r.stdout
    assert "Contracts: 1 kept, 3 broken" in out, out
    for line in ("analysis.planted_ui -> rich", "analysis.planted_sql -> duckdb",
                 "rmtui.screens.planted_stats -> pandas"):
        assert line in out, out


def sql_calls(root: Path) -> list[str]:
    """``path:line`` of every call running SQL text in ``root``'s packages, outside analysis/store."""
    found = []
    for pkg in ("analysis", "rmtui"):
        for f in sorted((root / pkg).rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel.startswith("analysis/store/"):
                continue
            for node in ast.walk(ast.parse(f.read_text(), rel)):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in SQL_METHODS and node.args):
                    continue
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    text = arg.value
                elif isinstance(arg, ast.JoinedStr):
                    text = "".join(v.value for v in arg.values if isinstance(v, ast.Constant))
                else:
                    continue
                if SQL_RE.match(text):
                    found.append((rel, node.lineno))
    return [f"{rel}:{line}" for rel, line in sorted(found)]


def test_only_the_store_runs_sql():
    assert sql_calls(ROOT) == []


def test_sql_check_finds_planted_sql(tmp_path):
    (tmp_path / "analysis" / "store").mkdir(parents=True)
    (tmp_path / "rmtui").mkdir()
    (tmp_path / "analysis" / "store" / "ok.py").write_text('def f(st):\n    return st.df("SELECT 1")\n')
    (tmp_path / "analysis" / "bad.py").write_text(
        'def f(st, t):\n    st.scalar("SELECT count(*) FROM pairs")\n    return st.df(f"select * from {t}")\n')
    (tmp_path / "rmtui" / "bad.py").write_text('def g(cur):\n    cur.execute("INSERT INTO x VALUES (1)")\n'
                                               '    cur.execute(q)\n    print("SELECT is a word")\n')
    assert sql_calls(tmp_path) == ["analysis/bad.py:2", "analysis/bad.py:3", "rmtui/bad.py:2"]
