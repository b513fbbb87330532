"""Long work shows progress: counts, the share and an ETA on a terminal; one line per stage when the
output is a log or a pipe (no bars, no carriage returns)."""

from __future__ import annotations

import io
import json
import re


from tests.helpers.cli import run_cli


def _pairs(path, n):
    path.write_text("".join(json.dumps({"prompt": f"Human: question {i}?", "chosen": f"A helpful answer {i}.",
                                        "rejected": f"No. {i}"}) + "\n" for i in range(n)), encoding="utf-8")
    return path


def test_not_on_a_terminal_each_stage_is_one_line(tmp_path):
    data, study = _pairs(tmp_path / "pairs.jsonl", 40), tmp_path / "s.duckdb"
    r = run_cli("ingest", data, "--study", study)
    assert r.code == 0, r.all
    assert "\r" not in r.out and "ETA" not in r.out
    lines = [x for x in r.out.splitlines() if x.startswith("ingest ")]
    assert len(lines) == 1 and re.fullmatch(r"ingest .*pairs\.jsonl: 40 pairs in \d+\.\d s", lines[0]), r.out
    r = run_cli("featurize", "--study", study, "--labeler", "heuristic")
    assert r.code == 0, r.all
    lines = [x for x in r.out.splitlines() if x.startswith("featurize ")]
    assert len(lines) == 1 and re.fullmatch(r"featurize heuristic: 80/80 texts in \d+\.\d s", lines[0]), r.out
    assert "\r" not in r.out and "ETA" not in r.out


def test_on_a_terminal_the_bar_shows_counts_share_and_eta(monkeypatch):
    from rmtui.cli import base

    buf = io.StringIO()
    term = base.SafeConsole(file=buf, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(base, "console", term)
    prog = base.progress_bar("texts")
    assert not isinstance(prog, base.PlainProgress)
    with prog:
        t = prog.add_task("score pre", total=2000)
        prog.advance(t, 500)
        prog.refresh()
        shown = buf.getvalue()
    assert "score pre" in shown and "500/2,000 texts" in shown and "25%" in shown and "ETA" in shown
    unknown = base.progress_bar("pairs")
    with unknown:
        t = unknown.add_task("ingest data.jsonl", total=None)
        unknown.advance(t, 1234)
        unknown.refresh()
    assert "1,234 pairs" in buf.getvalue()
