"""Report outputs never carry raw data, and are never left half-written (issue 25, items 3 and 7):
report.md and the Markdown export escape Markdown/HTML in every data-derived cell, figure labels are
sanitised, library warnings come back as visible lines; report and export are written under a
temporary name and renamed, and what a killed writer left is removed by the next one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analysis.datasets.synth import make_synthetic_study
from analysis.fit.study_fit import fit_study
from analysis.report.document import parse_md_tables, write_report
from analysis.report.export import export_pairs
from analysis.store import open_study
from analysis.store.triage import toggle_tag
from analysis.textsafe import figure_label, md_escape

ROOT = Path(__file__).resolve().parents[3]
SUBSET = "ev<script>alert(1)</script>|x`y\x1b[2J"
TAG = "t<script>|`z\x1b]0;T\x07"


@pytest.fixture(scope="module")
def hostile_study(tmp_path_factory):
    p = tmp_path_factory.mktemp("hostile") / "s.duckdb"
    make_synthetic_study(p, 300, seed=2)
    with open_study(p) as st:
        ids = st.df("SELECT pair_id FROM pairs ORDER BY pair_id")["pair_id"].tolist()
        with st.transaction() as cur:  # a subset name from the data
            cur.execute("UPDATE pairs SET subset = ? WHERE pair_id IN (SELECT pair_id FROM pairs ORDER BY pair_id "
                        "LIMIT 150)", [SUBSET])
        for pid in ids[:3]:
            toggle_tag(st, pid, TAG)
        fit_study(st)
    return p, ids


def _assert_no_raw(text: str) -> None:
    """No ESC/BEL; the data's ``<``, ``|`` and backtick only backslash-escaped (``\\<script``), never raw."""
    assert "\x1b" not in text and "\x07" not in text
    for raw in (r"<script", r"</script", r"\|x", r"`y", r"\|`z", r"`z", r"script>"):
        hits = re.findall(r"(?<!\\)" + raw, text)
        assert not hits, (raw, hits)


def test_md_escape_and_figure_label():
    assert md_escape("a<b>|`c`*d*_e_[f](g)&h\x1b") == "a\\<b\\>\\|\\`c\\`\\*d\\*\\_e\\_\\[f\\](g)\\&h␛"
    assert md_escape("**bold** <x>", keep="*") == "**bold** \\<x\\>"
    assert md_escape("l1\nl2") == "l1␊l2"
    assert figure_label("sub\x1b[2J\u202e") == "sub\\x1b[2J\\u202e"
    assert len(figure_label("x" * 100)) == 40


def test_report_md_from_hostile_subset_names_and_tags_has_none_raw(hostile_study, tmp_path):
    """Must show (issue 25): report.md from a study whose subset names and tags hold `<script>`, `|`,
    a backtick and ESC contains none of them raw; the tables still parse back to the data's names;
    the figures are made without a missing-glyph warning carrying the ESC."""
    p, _ = hostile_study
    with open_study(p, read_only=True) as st:
        res = write_report(st, tmp_path / "rep")
    md = res.markdown.read_text(encoding="utf-8")
    _assert_no_raw(md)
    shown = "ev\\<script\\>alert(1)\\</script\\>\\|x\\`y␛\\[2J"
    assert shown in md  # the subset is there, escaped
    assert "t\\<script\\>\\|\\`z␛\\]0;T␇" in md  # and the tag
    cells = [c for _, rows in parse_md_tables(md) for r in rows for c in r]
    assert "ev<script>alert(1)</script>|x`y␛[2J" in cells  # the table cells read back as the (visible) name
    assert not any("\x1b" in w or "Glyph" in w for w in res.warnings), res.warnings
    html = res.html.read_text(encoding="utf-8")
    assert "\x1b" not in html and "<script" not in html


def test_markdown_export_of_hostile_names_has_none_raw(hostile_study, tmp_path):
    p, ids = hostile_study
    out = tmp_path / "x.md"
    with open_study(p, read_only=True) as st:
        export_pairs(st, ids[:3], None, out)
    md = out.read_text(encoding="utf-8")
    # the texts are fenced (shown as they are, control characters visible); every other field escaped
    outside = re.sub(r"(?s)```+text\n.*?\n```+", "", md)
    _assert_no_raw(outside)
    assert "- subset: ev\\<script\\>" in md and "- tags: t\\<script\\>\\|\\`z" in md


def test_report_figure_warnings_are_visible_lines(tmp_path, monkeypatch):
    """A library warning raised while the report is made (a font missing a data character's glyph) is
    captured and returned as a visible line, never printed raw."""
    import warnings

    import analysis.report.figures as doc  # the figures call _save (moved out of document)

    real = doc._save

    def noisy(fig, path):
        warnings.warn("Glyph 27 (\x1b) missing from font(s) DejaVu Sans.", UserWarning)
        return real(fig, path)

    monkeypatch.setattr(doc, "_save", noisy)
    import analysis.report.document as document
    monkeypatch.setattr(document, "_save", noisy)
    data = {"regimes": [{"regime": "stayed_aligned", "n": 3, "share": 0.5}]}
    with open_study(tmp_path / "s.duckdb") as st:
        res = write_report(st, tmp_path / "rep", data=data)
    assert res.warnings == ["UserWarning: Glyph 27 (␛) missing from font(s) DejaVu Sans."]


# -- atomic writes --------------------------------------------------------------------------------------

_SLOW_REPORT = """
import sys, time
import analysis.report.figures as doc
from analysis.store import open_study
real = doc._save
def slow(fig, path):
    out = real(fig, path)
    print("ready", flush=True)
    time.sleep(60)
    return out
doc._save = slow
import analysis.report.document as document
document._save = slow  # the report's own figures call it too
data = {"regimes": [{"regime": "stayed_aligned", "n": 3, "share": 0.5}], "notes": ["new"]}
with open_study(sys.argv[1], read_only=True) as st:
    document.write_report(st, sys.argv[2], data=data)
"""


def _killed_report(study: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SLOW_REPORT), str(study), str(out)],
                         stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert p.stdout.readline().strip() == "ready"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_killed_report_leaves_the_old_report_or_none_and_the_next_one_cleans_up(tmp_path):
    study = tmp_path / "s.duckdb"
    open_study(study).close()
    new = tmp_path / "new-report"
    _killed_report(study, new)  # killed while writing a report into a new folder: no folder
    assert not new.exists()
    assert [x.name for x in tmp_path.iterdir() if x.name.endswith(".part")]  # the staging folder it left
    old = tmp_path / "old-report"
    with open_study(study, read_only=True) as st:
        write_report(st, old, data={"notes": ["old"]})
    before = (old / "report.md").read_text()
    _killed_report(study, old)  # killed while rewriting an existing report: the old one stays whole
    assert (old / "report.md").read_text() == before and "- old" in before
    assert any(x.name.startswith(".rmtui-report.") for x in old.iterdir())
    with open_study(study, read_only=True) as st:  # the next report removes what the killed ones left
        write_report(st, new, data={"notes": ["again"]})
        write_report(st, old, data={"notes": ["again"]})
    assert not [x for x in tmp_path.iterdir() if x.name.endswith(".part")]
    assert sorted(x.name for x in old.iterdir()) == ["figures", "report.html", "report.md", "summary.json"]
    assert "- again" in (old / "report.md").read_text()


def test_export_leftovers_removed_and_a_failed_export_leaves_nothing(hostile_study, tmp_path, monkeypatch):
    p, ids = hostile_study
    out = tmp_path / "x.jsonl"
    (tmp_path / "x.jsonl.part").write_text("half")          # what a killed export of older rmtui left
    (tmp_path / ".x.jsonl.999999999.part").write_text("half")  # ... and of this one (its pid is gone)
    with open_study(p, read_only=True) as st:
        export_pairs(st, ids[:2], None, out)
        assert sorted(x.name for x in tmp_path.iterdir()) == ["x.jsonl", "x.jsonl.meta.json"]
        import analysis.report.export as ex

        real, calls = ex.json.dumps, []

        def boom(*a, **k):  # the study's metadata goes through; the second record meets a full disk
            if "indent" in k or len(calls) < 1:
                calls.append(1)
                return real(*a, **k)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ex.json, "dumps", boom)
        with pytest.raises(Exception, match="cannot write the export: No space left on device"):
            export_pairs(st, ids[:2], None, tmp_path / "y.jsonl")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x.jsonl", "x.jsonl.meta.json"]
