"""Library warnings during `fit` (issue 25, item 4): numpy/statsmodels warnings are captured, never
printed as multi-line dumps; each becomes one line saying what was degenerate and a row of
``fit_warnings`` stored with the fit."""

from __future__ import annotations

import gc
import json
import warnings

from analysis.datasets.synth import make_synthetic_study
from analysis.fit.study_fit import fit_study
from analysis.store import open_study
from tests.helpers.cli import run_cli


def _separated_study(path):
    """Planted: every chosen response is much longer, so length alone separates the sides (the
    length-only logit baseline cannot converge)."""
    make_synthetic_study(path, 60, seed=2)
    with open_study(path) as st:
        with st.transaction() as cur:
            cur.execute("UPDATE pairs SET chosen_response = chosen_response || repeat(' and more words', 40)")
    return path


def test_fit_captures_library_warnings_stores_them_and_says_one_line_each(tmp_path):
    p = _separated_study(tmp_path / "s.duckdb")
    gc.collect()  # sockets other tests left to the collector warn when collected: not the fit's
    with open_study(p) as st:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fit_study(st)
        escaped = [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)]
        assert escaped == []  # nothing escapes to the terminal
        rows = st.df("SELECT * FROM fit_warnings WHERE fit_id = ?", [res.fit_id])
        stored_msgs = json.loads(st.scalar("SELECT messages FROM fits WHERE fit_id = ?", [res.fit_id]))
    assert len(rows) >= 1 and set(rows["category"]) & {"PerfectSeparationWarning", "ConvergenceWarning"}
    # The planted degeneracy is the length-only baseline; the imprint fit may warn too on some CPUs'
    # numerics (CI's did: 4 imprint rows), and then its rows name their model/target.
    assert "agreement_and_baselines" in set(rows["analysis"]) and (rows["n"] >= 1).all()
    assert set(rows["analysis"]) <= {"agreement_and_baselines", "imprint"}, set(rows["analysis"])
    assert rows.loc[rows["analysis"] == "imprint", "target"].notna().all()
    lines = [m for m in res.messages if m.startswith("warning in ")]
    assert len(lines) == len(rows) and lines == [m for m in stored_msgs if m.startswith("warning in ")]
    assert all("\n" not in m for m in lines), lines
    base = [m for m in lines if m.startswith("warning in agreement_and_baselines:")]
    assert base and all("length-only logit baseline" in m for m in base), lines


def test_cli_fit_prints_each_warning_as_one_line(tmp_path):
    p = _separated_study(tmp_path / "s.duckdb")
    r = run_cli("fit", "--study", p)
    assert r.code == 0, r.all
    assert "warning in agreement_and_baselines" in r.all
    assert "Warning:" not in r.err and "warnings.warn" not in r.err and "mlefit" not in r.all, r.err


def test_summary_captures_library_warnings_too(tmp_path):
    """`rmtui summary` printed statsmodels' two-line warnings (PerfectSeparationWarning) raw on stderr."""
    p = _separated_study(tmp_path / "s.duckdb")
    r = run_cli("summary", "--study", p)
    assert r.code == 0, r.all
    assert "PerfectSeparationWarning" not in r.err and "callback(newparams)" not in r.all, r.err
    assert "note: warning in summary: PerfectSeparationWarning" in r.out
