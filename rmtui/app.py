"""``rmtui explore``: the Textual app over one study.

Screens: the entry list (default), an entry, its rewrite view, the feature imprint, the regime table,
help. The app never computes statistics and never writes SQL: it calls :mod:`rmtui.services`.
Keys are bindings with ids; a TOML keymap (``~/.config/rmtui/keymap.toml`` or ``$RMTUI_KEYMAP``,
``"list.open" = "o"``) remaps them. Every action is also a command in the palette (ctrl+p).
"""

from __future__ import annotations

import os
import tomllib
from functools import partial
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from analysis.errors import RmtuiError
from analysis.store.filters import EntryFilter
from analysis.textsafe import visible_line

from .screens.common import error_parts
from .screens.dialogs import ErrorDialog

DEFAULT_KEYMAP = Path("~/.config/rmtui/keymap.toml")


def keymap_path() -> Path:
    return Path(os.environ.get("RMTUI_KEYMAP") or DEFAULT_KEYMAP).expanduser()


def load_keymap(path: str | Path | None = None) -> dict[str, str]:
    """Read ``{binding id: keys}`` from a TOML file (top level or a ``[keymap]`` table). Missing file: {}."""
    p = Path(path).expanduser() if path else keymap_path()
    if not p.exists():
        return {}
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RmtuiError(f"{p}: {e}", "Keymap") from e
    except OSError as e:
        raise RmtuiError(f"{p}: cannot read: {e}", "Keymap") from e
    km = data.get("keymap", data)
    if not isinstance(km, dict):
        raise RmtuiError(f"{p}: [keymap] must be a table of id = \"keys\"", "Keymap")
    out = {}
    for k, v in km.items():
        if not isinstance(v, str) or not v.strip():
            raise RmtuiError(f"{p}: {k}: keys must be a non-empty string like \"o\" or \"ctrl+o,o\"", "Keymap")
        out[str(k)] = v.replace(" ", "")
    return out


def _binding_contexts() -> dict[str, list[Binding]]:
    """The bindings active together, per place in the app (the app's own keys are active everywhere)."""
    from .screens.coefficients import CoefficientScreen
    from .screens.dialogs import ChoiceDialog, ConfirmDialog, ErrorDialog, InputDialog
    from .screens.entry import EntryScreen
    from .screens.glossary import GlossaryScreen
    from .screens.help import HelpScreen
    from .screens.entry_list import ListScreen
    from .screens.regimes import RegimeScreen
    from .screens.rewrite import RewriteScreen
    from .widgets.entry_list import EntryList
    from .widgets.table import ListTable

    app = list(RmtuiApp.BINDINGS)
    own = {"list": ListScreen.BINDINGS + EntryList.BINDINGS, "entry": EntryScreen.BINDINGS,
           "rewrite": RewriteScreen.BINDINGS, "coefficients": CoefficientScreen.BINDINGS + ListTable.BINDINGS,
           "regimes": RegimeScreen.BINDINGS + ListTable.BINDINGS, "help": HelpScreen.BINDINGS,
           "glossary": GlossaryScreen.BINDINGS}
    out = {name: app + [b for b in bindings if isinstance(b, Binding)] for name, bindings in own.items()}
    for d in (InputDialog, ConfirmDialog, ErrorDialog, ChoiceDialog):
        out[f"dialog {d.__name__}"] = [b for b in d.BINDINGS if isinstance(b, Binding)]
    return out


def keymap_problems(km: dict[str, str]) -> list[str]:
    """What a keymap gets wrong: ids no binding has (a typo is otherwise ignored in silence) and keys
    that end up on two actions in one place (only one of them would run)."""
    contexts = _binding_contexts()
    known = {b.id for bindings in contexts.values() for b in bindings if b.id}
    problems = [f"{k}: no binding has this id" for k in km if k not in known]
    for where, bindings in contexts.items():
        on: dict[str, set[str]] = {}
        for b in bindings:
            if not b.id:
                continue
            for key in (km.get(b.id) or b.key).split(","):
                on.setdefault(key.strip(), set()).add(b.id)
        for key, ids in on.items():
            if len(ids) > 1 and any(i in km for i in ids):
                problems.append(f"{key!r} is bound to {' and '.join(sorted(ids))} on the {where} screen")
    return problems


class RmtuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "rmtui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("i,f2", "glossary", "Glossary", show=False, id="app.glossary"),
        Binding("q", "quit", "Quit", show=False, id="app.quit"),
    ]

    def __init__(self, study_path: str | Path, *, read_only: bool = False, keymap: str | Path | None = None,
                 initial_filter: EntryFilter | None = None, export_default: str = "rmtui-export.jsonl",
                 trust_remote_code: bool = False) -> None:
        super().__init__()
        self.study_path = Path(study_path)
        self.read_only = read_only
        self.trust_remote_code = trust_remote_code
        self.keymap_file = keymap
        self.initial_filter = initial_filter or EntryFilter()
        self.export_default = export_default
        self.service = None
        self.sub_title = visible_line(self.study_path.name) + (" (read-only)" if read_only else "")

    # -- lifecycle ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        try:
            km = load_keymap(self.keymap_file)
            if km:
                self.set_keymap(km)
                problems = keymap_problems(km)
                if problems:
                    where = self.keymap_file or keymap_path()
                    self.call_after_refresh(self.show_error, "Keymap", f"{where}:\n" + "\n".join(problems)
                                            + "\nThe other entries apply.")
        except RmtuiError as e:
            self.call_after_refresh(self.show_error, e.title, e.message)
        self.open_study()

    def open_study(self) -> None:
        from .screens.open_failed import OpenFailedScreen
        from .screens.entry_list import ListScreen
        from .services import StudyService

        try:
            self.service = StudyService(self.study_path, read_only=self.read_only,
                                        trust_remote_code=self.trust_remote_code)
        except Exception as e:
            title, message = error_parts(e)
            self.push_screen(OpenFailedScreen(title, message))
            return
        if self.service.read_only_by_file:  # chmod 444: read-only by itself, and the header says so
            self.read_only = True
            self.sub_title = self.study_path.name + " (read-only file)"
        self.push_screen(ListScreen())
        if self._watch_timer is None:
            self._watch_timer = self.set_interval(self.WATCH_S, self.watch_study)

    # -- a job writing the same study (see rmtui.services) -----------------------------------------
    WATCH_S = 1.0  # how often the app looks whether another process committed (a stat; a read if so)
    _watch_timer = None
    n_watch_reloads = 0  # for tests and benchmarks: reloads because another process committed

    def watch_study(self, force: bool = False) -> bool:
        """Reload the entry list when another process (a scoring job) committed since the last look,
        keeping the cursor on its pair; ``force``: reload anyway. Returns whether it reloaded."""
        ls = self.list_screen
        if self.service is None or ls is None or not ls.is_mounted:
            return False
        try:
            if not (self.service.changed_elsewhere() or force):
                return False
            ls.entries.load(keep_cursor=True)
            self.n_watch_reloads += 1
        except Exception:  # a background look (the job holds the file, say): never a dialog; next time
            return False
        return True

    def on_unmount(self) -> None:
        if self.service is not None:
            self.service.close()

    # -- helpers for screens -----------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        self.push_screen(ErrorDialog(title, message))

    def notify_status(self, msg: str) -> None:
        setter = getattr(self.screen, "set_status", None)
        if setter is not None:
            setter(msg)

    @property
    def list_screen(self):
        from .screens.entry_list import ListScreen

        for s in self.screen_stack:
            if isinstance(s, ListScreen):
                return s
        return None

    def filter_list(self, *, reset: bool | None = None, **kw) -> None:
        """Go back to the entry list and filter it (feature keeps the rest of the filter; others reset)."""
        ls = self.list_screen
        if ls is None:
            return
        while self.screen is not ls:
            self.pop_screen()
        if reset is None:
            reset = "feature" not in kw
        base = EntryFilter(regime=None) if reset else ls.entries.filt
        ls.apply_filter(base.replace(**kw))

    def switch_to(self, screen: Screen) -> None:
        self.pop_screen()
        self.push_screen(screen)

    # -- actions -----------------------------------------------------------------------------------
    def show_summary_screen(self, name: str, *, switch: bool = False) -> None:
        """Open the coefficients or regimes screen (``switch``: in place of the one shown). The app owns
        this navigation, so the two screens, which lead to each other, never import each other."""
        from .screens.coefficients import CoefficientScreen
        from .screens.regimes import RegimeScreen

        if name == "coefficients":  # built once and reused: composing it took 0.1-0.2 s at every c
            if not self.is_screen_installed("coefficients"):
                self.install_screen(CoefficientScreen(), name="coefficients")
            screen = self.get_screen("coefficients")
        else:
            screen = RegimeScreen()
        if switch:
            self.switch_to(screen)
        else:
            self.push_screen(screen)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        """Quit, but first ask when a rewrite view holds a draft that is not kept (it would be lost)."""
        from .screens.dialogs import ConfirmDialog
        from .screens.rewrite import RewriteScreen

        if getattr(self.screen, "is_quit_question", False):
            return
        lost: list[str] = []
        for s in self.screen_stack:
            if isinstance(s, RewriteScreen) and s.is_mounted:
                s._save_editor()
                lost += s.unsaved()
        if not lost:
            self.exit()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.exit()

        dialog = ConfirmDialog("Quit rmtui?", "The rewrite view holds work that is not kept in the study:\n  "
                               + "\n  ".join(lost) + "\nQuit and lose it? (n: back, then ctrl+s keeps a "
                               "rescored rewrite)")
        dialog.is_quit_question = True
        self.push_screen(dialog, done)

    def action_glossary(self) -> None:
        from .screens.glossary import GlossaryScreen

        if isinstance(self.screen, GlossaryScreen):
            return
        self.push_screen(GlossaryScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        seen = set()
        for _key, ab in screen.active_bindings.items():
            b = ab.binding
            if not b.description or b.action in seen or b.action in ("quit", "command_palette"):
                continue
            seen.add(b.action)
            yield SystemCommand(b.description, f"key: {self.get_key_display(b)}",
                                partial(self.call_later, ab.node.run_action, b.action))
