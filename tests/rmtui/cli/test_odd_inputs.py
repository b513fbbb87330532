"""Odd input, clear answer (issue 25, item 6): each gets one line naming what is wrong and what to do,
never the engine's raw text: a non-UTF-8 file name, a newline in a file name, a tag over 40
characters, a study file cut short, a null prompt beside bare responses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis.errors import RmtuiError
from analysis.store import open_study
from analysis.store.triage import toggle_tag
from tests.helpers.cli import run_cli

ROWS = "".join(json.dumps({"chosen": f"\n\nHuman: q{i}\n\nAssistant: y", "rejected": f"\n\nHuman: q{i}\n\nAssistant: n"})
               + "\n" for i in range(3))


def _one_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_non_utf8_file_name(tmp_path):
    raw = os.fsencode(tmp_path) + b"/bad\xffname-train.jsonl"
    with open(raw, "w") as fh:
        fh.write(ROWS)
    r = run_cli("ingest", os.fsdecode(raw), "--study", tmp_path / "s.duckdb")
    assert r.code == 1
    line = _one_line(r.err)
    assert "bad\\xffname-train.jsonl: the file name is not valid UTF-8 (byte 0xff at position" in line, line
    assert "rename it" in line and "surrogate" not in line and "Conversion" not in line


def test_newline_in_a_file_name_keeps_the_message_one_line(tmp_path):
    r = run_cli("ingest", str(tmp_path / "new\nline-train.jsonl"), "--study", tmp_path / "s.duckdb")
    assert r.code == 1
    assert "new␊line-train.jsonl" in _one_line(r.err)


def test_tag_over_40_characters_says_why(tmp_path):
    from analysis.datasets.synth import make_synthetic_study

    p = tmp_path / "s.duckdb"
    make_synthetic_study(p, 20, seed=1)
    with open_study(p) as st:
        pid = st.scalar("SELECT min(pair_id) FROM pairs")
        with pytest.raises(RmtuiError, match=r"has 57 characters, more than 40: a tag is 1-40 characters") as e:
            toggle_tag(st, pid, "x" * 57)
        assert e.value.title != "Tag" and "\n" not in e.value.message


def test_study_cut_short(tmp_path):
    src = tmp_path / "a-train.jsonl"
    src.write_text(ROWS)
    study = tmp_path / "s.duckdb"
    assert run_cli("ingest", src, "--study", study).code == 0
    with open(study, "r+b") as fh:  # a full disk, an interrupted copy
        fh.truncate(study.stat().st_size // 2)
    for args in (("summary", "--study", study), ("ingest", src, "--study", study)):
        r = run_cli(*args)
        assert r.code == 1
        line = _one_line(r.err)
        assert "the study file is cut short" in line and "Restore it from a backup" in line, line
        assert "IO Error" not in line and "Could not read enough bytes" not in line


def test_null_prompt_beside_bare_responses_is_not_no_assistant(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": None, "chosen": "yes", "rejected": "no"}) + "\n" + ROWS)
    r = run_cli("ingest", src, "--study", tmp_path / "s.duckdb")
    assert "no_assistant" not in r.all
    assert "p.jsonl:1: missing_field: field 'prompt' is null and the responses are bare" in r.all, r.all


async def test_app_status_line_says_what_is_wrong_with_a_long_tag(tmp_path):
    """The app said only "failed: Tag"; its status line now carries the one-line message."""
    from analysis.datasets.synth import make_synthetic_study
    from rmtui.app import RmtuiApp
    from rmtui.widgets.line import Line
    from tests.helpers.app import wait_idle

    p = tmp_path / "s.duckdb"
    make_synthetic_study(p, 20, seed=1)
    app = RmtuiApp(str(p), keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(200, 30)) as pilot:
        await wait_idle(pilot)
        await pilot.press("x")  # every pair
        await wait_idle(pilot)
        app.screen.action_tag_custom()
        await wait_idle(pilot)
        app.screen.query_one("Input").value = "y" * 45
        await pilot.press("enter")
        await wait_idle(pilot)
        assert app.screen.__class__.__name__ == "ErrorDialog"
        await pilot.press("escape")
        await wait_idle(pilot)
        status = app.screen.query_one("#status", Line).text
        assert "failed: Tag not valid: tag 'yyy" in status and "has 45 characters, more than 40" in status, status
