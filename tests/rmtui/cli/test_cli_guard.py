"""The CLI's last guard: an unexpected exception (a bug of rmtui's own) is one line and exit 1, not a
traceback; RMTUI_DEBUG=1 lets the traceback through for a report."""

import pytest

import rmtui.cli  # noqa: F401  (registers the commands)
from rmtui.cli import base


def _boom():
    raise KeyError("chosen_response")


def test_a_bug_is_one_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.delenv("RMTUI_DEBUG", raising=False)
    monkeypatch.setattr(base, "app", _boom)
    with pytest.raises(SystemExit) as e:
        base.main()
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Internal error" in err and "KeyError" in err and "RMTUI_DEBUG=1" in err


def test_rmtui_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("RMTUI_DEBUG", "1")
    monkeypatch.setattr(base, "app", _boom)
    with pytest.raises(KeyError):
        base.main()
