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
    assert re.search(r"Contracts: 7 kept, 0 broken", r.stdout), r.stdout


def test_import_contracts_fail_on_planted_violations(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "analysis" / "store" / "planted_ui.py").write_text("from rich.text import Text\n")
    (root / "analysis" / "metrics" / "planted_sql.py").write_text("import duckdb\n")
    (root / "rmtui" / "screens" / "planted_stats.py").write_text("import pandas as pd\n")
    r = _lint(root)
    assert r.returncode != 0
    out = r.stdout
    assert "Contracts: 4 kept, 3 broken" in out, out
    for line in ("analysis.store.planted_ui -> rich", "analysis.metrics.planted_sql -> duckdb",
                 "rmtui.screens.planted_stats -> pandas"):
        assert line in out, out


# The stages of analysis/, top to bottom, as the ``stages`` contract of pyproject.toml lists them.
STAGES = ["pipeline", "report", "fit", "rewrite", "scoring", "models", "datasets", "features", "llm", "store",
          "metrics"]
SHARED = ["errors", "hashing", "textsafe", "choices"]


def test_stage_contracts_fail_on_a_planted_violation_in_every_stage(tmp_path):
    """Each stage imports one stage *above* it; a new top-level module lands outside every stage; a
    shared top module imports a stage; a widget imports a screen. Every one is reported."""
    root = _copy_tree(tmp_path)
    for lower, upper in zip(STAGES[1:], STAGES[:-1]):
        (root / "analysis" / lower / "planted_up.py").write_text(f"import analysis.{upper}\n")
    (root / "analysis" / "planted_top.py").write_text("X = 1\n")
    with open(root / "analysis" / "hashing.py", "a") as f:
        f.write("\nimport analysis.store  # planted\n")
    (root / "rmtui" / "widgets" / "planted_up.py").write_text("import rmtui.screens.entry\n")
    r = _lint(root)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    # exhaustive layers: a module outside every stage fails the contract before any import is read
    assert "analysis.planted_top" in out, out
    (root / "analysis" / "planted_top.py").unlink()
    r = _lint(root)
    out = r.stdout
    assert "Contracts: 4 kept, 3 broken" in out, out
    for lower, upper in zip(STAGES[1:], STAGES[:-1]):
        assert f"analysis.{lower}.planted_up -> analysis.{upper}" in out, (lower, out)
    assert "analysis.hashing -> analysis.store" in out, out
    assert "rmtui.widgets.planted_up -> rmtui.screens.entry" in out, out


def test_top_of_analysis_holds_packages_and_at_most_five_small_modules():
    mods = sorted(p.stem for p in (ROOT / "analysis").glob("*.py") if p.stem != "__init__")
    assert mods == sorted(SHARED) and len(mods) <= 5, mods
    pkgs = sorted(p.name for p in (ROOT / "analysis").iterdir() if (p / "__init__.py").exists())
    assert pkgs == sorted(STAGES + ["resources"]), pkgs
    for m in mods:
        assert len((ROOT / "analysis" / f"{m}.py").read_text().splitlines()) <= 200, m


def test_every_package_says_what_it_owns_and_may_import():
    for init in sorted([*(ROOT / "analysis").glob("*/__init__.py"), *(ROOT / "rmtui").glob("*/__init__.py")]):
        if init.parent.name == "resources":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 80, f"{init.relative_to(ROOT)} has no docstring saying what it owns"
        if init.parent.parent.name == "analysis":
            assert re.search(r"[Mm]ay import|imports only|imports? no", doc), init.relative_to(ROOT)


def test_no_module_over_600_lines():
    long = {f.relative_to(ROOT).as_posix(): n for pkg in ("analysis", "rmtui") for f in (ROOT / pkg).rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 600}
    assert long == {}, long


_CYCLES = r"""
import sys, grimp
g = grimp.build_graph("analysis", "rmtui", cache_dir=None, exclude_type_checking_imports=True)
mods = sorted(g.modules)
adj = {m: sorted(set(g.find_modules_directly_imported_by(m)) & set(mods)) for m in mods}
index, low, stack, on, out = {}, {}, [], set(), []
sys.setrecursionlimit(100000)
def visit(v):
    index[v] = low[v] = len(index); stack.append(v); on.add(v)
    for w in adj[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            out.append(" <-> ".join(sorted(comp)))
for m in mods:
    if m not in index:
        visit(m)
print("\n".join(out))
"""


def import_cycles(root: Path) -> list[str]:
    """Strongly connected groups of modules in ``root``'s two packages, every import counted (module
    level or inside a function; annotations under TYPE_CHECKING are not imports at run time)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", _CYCLES], cwd=root, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


def test_no_import_cycles():
    assert import_cycles(ROOT) == []


def test_cycle_check_finds_a_planted_cycle(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "analysis" / "store" / "planted_a.py").write_text("def f():\n    from analysis.store import planted_b\n")
    (root / "analysis" / "store" / "planted_b.py").write_text("from analysis.store import planted_a\n")
    assert "analysis.store.planted_a <-> analysis.store.planted_b" in import_cycles(root)


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


def test_moved_modules_import_under_their_former_names():
    """Scripts written before the layout by stage keep working: the old name is the same module."""
    code = ("import analysis.data, analysis.datasets.readers as r, analysis.study_fit as sf\n"
            "from analysis.embedded import embedded_model_path\n"
            "from analysis.report import write_report\n"
            "from analysis.pipeline import run_config\n"
            "import analysis\n"
            "assert analysis.data is r and sf.__name__ == 'analysis.fit.study_fit'\n"
            "for old, new in analysis.MOVED.items():\n"
            "    import importlib; assert importlib.import_module(old) is importlib.import_module(new), old\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout.strip() == "ok", r.stderr
