"""Hostile content (issue 19, items 1-2): control characters and markup-like data reach no terminal
raw and are never parsed as markup or emoji, in the CLI, the exports and the app."""

from __future__ import annotations

from tests.helpers.app import wait_idle

import json
from pathlib import Path


from analysis.textsafe import has_controls, visible, visible_line
from tests.helpers.cli import run_cli

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;PWNED\x07"


def _pair(i: int, extra: str = "") -> dict:
    return {"chosen": f"\n\nHuman: q{i} {extra}\n\nAssistant: good {i} {extra}",
            "rejected": f"\n\nHuman: q{i} {extra}\n\nAssistant: bad {i}"}


def hostile_file(tmp_path: Path, n: int = 3) -> Path:
    p = tmp_path / "hostile-train.jsonl"
    p.write_text("".join(json.dumps(_pair(i, CLEAR + TITLE + " [bold]x[/] :m: \u202eevil")) + "\n"
                         for i in range(n)), encoding="utf-8")
    return p


def assert_clean(s: str) -> None:
    assert "\x1b" not in s and "\x07" not in s and "\u202e" not in s, repr(s[:2000])


def test_visible_shows_every_control_character():
    assert visible("a\x1b[2Jb") == "a␛[2Jb"
    assert visible(TITLE) == "␛]0;PWNED␇"
    assert visible("l1\nl2\tx") == "l1\nl2\tx"
    assert visible("a\r\nb\rc") == "a\nb␍c"
    assert visible("\x9b31m") == "\\x9b31m"
    assert visible("\u202eabc\u2066") == "\\u202eabc\\u2066"
    assert visible("\x7f\x00") == "␡␀"
    assert visible_line("a\nb\tc") == "a␊b␉c"
    assert visible("plain [bold] :m: text") == "plain [bold] :m: text"
    assert has_controls("x\x1by") and not has_controls("x\ny")
    assert visible(None) == "" and visible(3) == "3"


def test_ingest_and_summary_with_markup_names_and_escapes(tmp_path):
    """A subset named safety[/red] and a split tr[/]ain crashed ingest after committing and then every
    summary (MarkupError); the texts' escapes reached the terminal."""
    study = tmp_path / "s.duckdb"
    src = hostile_file(tmp_path)
    r = run_cli("ingest", src, "--study", study, "--subset", "safety[/red]\x1b[2J", "--split", "tr[/]ain")
    assert r.code == 0, r.all
    assert_clean(r.all)
    assert "safety[/red]␛[2J" in r.out and "tr[/]ain" in r.out and "added 3" in r.out
    r = run_cli("score", "--study", study, "--model", "embedded:pre", "--role", "pre", "--name", "m")
    assert r.code == 0, r.all
    assert_clean(r.all)
    r = run_cli("summary", "--study", study, "--all")  # the subset rows are in the full tables
    assert r.code == 0, r.all
    assert_clean(r.all)
    assert "safety[/red]␛[2J" in r.out and "Ⓜ" not in r.out, r.out


def test_strict_excerpt_and_line_100_are_shown_literally(tmp_path):
    """An error on line 100 printed as 'file💯' (Rich emoji code :100:); the excerpt printed raw escapes."""
    p = tmp_path / "bad-train.jsonl"
    lines = [json.dumps(_pair(i)) for i in range(99)] + ['{"chosen": "x\\u001b[2J" ' + CLEAR + TITLE]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run_cli("ingest", p, "--study", tmp_path / "s.duckdb", "--strict")
    assert r.code == 1, r.all
    assert_clean(r.all)
    assert f"{p}:100:" in r.err and "💯" not in r.err, r.err
    assert "␛[2J" in r.err


def test_console_never_parses_markup_or_emoji(capsys):
    from rich.table import Table

    from rmtui.cli.base import SafeConsole, styled

    c = SafeConsole(force_terminal=True, width=200)
    c.print("model :m: at file:100: [bold]x[/] safety[/red]" + CLEAR)
    t = Table()
    t.add_column("subset")
    t.add_row("tr[/]ain" + TITLE)
    c.print(t)
    c.print(styled(("title", "bold red"), ": ", "[/] :100:" + CLEAR))
    with c.status("loading [/]m"):
        pass
    out = capsys.readouterr().out
    assert ":m:" in out and "file:100:" in out and "[bold]x[/]" in out and "tr[/]ain␛]0;PWNED␇" in out
    assert "Ⓜ" not in out and "💯" not in out
    assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x07" not in out
    assert "[/] :100:␛[2J" in out


def test_export_markdown_shows_escapes_jsonl_keeps_bytes(tmp_path):
    study = tmp_path / "s.duckdb"
    assert run_cli("ingest", hostile_file(tmp_path), "--study", study, "--subset", "sub\x1b[31m").code == 0
    md = tmp_path / "out.md"
    r = run_cli("export", "--study", study, "-o", md)
    assert r.code == 0, r.all
    text = md.read_text(encoding="utf-8")
    assert_clean(text)
    assert "␛[2J" in text and "sub␛\\[31m" in text and "\\u202eevil" in text
    jl = tmp_path / "out.jsonl"
    assert run_cli("export", "--study", study, "-o", jl).code == 0
    recs = [json.loads(x) for x in jl.read_text(encoding="utf-8").splitlines()]
    assert CLEAR + TITLE in recs[0]["chosen"] and recs[0]["subset"] == "sub\x1b[31m"  # byte-exact
    # a search that looks like markup is shown as typed (it printed as empty)
    r = run_cli("export", "--study", study, "-o", tmp_path / "b.jsonl", "--search", "[bold]")
    assert r.code == 0 and "search='[bold]'" in r.out.replace("\n", ""), r.all


def test_report_shows_escapes(tmp_path):
    from analysis.report.document import write_report
    from analysis.store import open_study

    study = tmp_path / "s.duckdb"
    assert run_cli("ingest", hostile_file(tmp_path), "--study", study, "--subset", "sub\x1b[31m").code == 0
    with open_study(study) as st:
        res = write_report(st, tmp_path / "rep", data={"study": "x\x1b[2J", "notes": ["n\x1b[2J"]},
                           title="t\x1b]0;T\x07")
    for p in (res.markdown, res.html):
        t = Path(p).read_text(encoding="utf-8")
        assert_clean(t)


# -- the app ------------------------------------------------------------------------------------------
def _screen_output(app) -> str:
    """What the app would write to the terminal for the whole screen now (compositor output)."""
    return app.screen._compositor.render_update(full=True).render_segments(app.console)


async def test_app_shows_escapes_in_list_entry_and_dialogs(tmp_path):
    """Texts, subset, split and tags with \\x1b[2J / \\x1b]0;TITLE\\x07 wiped the screen and set the
    terminal title; now they show as ␛ in the list, the entry view and the tag dialog."""

    from analysis.store import browse, open_study
    from analysis.datasets.synth import make_synthetic_study
    from rmtui.app import RmtuiApp

    p = tmp_path / "study.duckdb"
    make_synthetic_study(p, 40, seed=3)
    with open_study(p) as st:
        st.execute("UPDATE pairs SET subset = 'sub' || chr(27) || '[2J', split = 'tr[/]ain' || chr(27) || ']0;T' || chr(7),"
                   " chosen_response = chosen_response || chr(27) || '[2J' || chr(27) || ']0;PWNED' || chr(7),"
                   " context = context || chr(27) || '[2J' || chr(8238)")
        for pid in st.df("SELECT pair_id FROM pairs")["pair_id"]:
            browse.toggle_tag(st, pid, "bad\x1b[31mtag")
    app = RmtuiApp(str(p), keymap=tmp_path / "no-keymap.toml")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        out = _screen_output(app)
        assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x07" not in out, out[:3000]
        assert "␛[2J" in out or "sub␛[" in out
        assert "bad␛[31mt" in out
        await pilot.press("enter")
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        assert type(app.screen).__name__ == "EntryScreen"
        out = _screen_output(app)
        assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x07" not in out and "\u202e" not in out
        assert "␛]0;PWNED␇" in out and "tr[/]ain␛]0;T␇" in out and "bad␛[31mtag" in out
        # the regimes screen (its by-subset table) and the filter dialog listing the subsets
        await pilot.press("escape", "m")
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        assert type(app.screen).__name__ == "RegimeScreen"
        out = _screen_output(app)
        assert "\x1b[2J" not in out and "sub␛[2J" in out, out[:3000]
        await pilot.press("escape", "f")
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        fields = [v for v, _ in app.screen.choices]
        await pilot.press("home", *(["down"] * fields.index("subset")), "enter")
        await wait_idle(pilot)  # workers done (tests/helpers/app.py)
        out = _screen_output(app)
        assert "\x1b[2J" not in out and "sub␛[2J" in out, out[:3000]
