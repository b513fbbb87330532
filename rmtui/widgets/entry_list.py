"""The virtual entry list: a ScrollView that renders only the visible lines.

On a filter or sort change the list asks DuckDB once for the pair ids in list order (160,000 ids: about
0.2 s); rows are then fetched in pages of ``PAGE`` by slicing that order (one small query per page, about
30 ms, at any depth), kept in an LRU of pages; rendered lines are kept in an LRU of strips (as toolong
does). Only visible lines are ever rendered.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from analysis.store.browse import DEFAULT_SORT, LIST_COLUMNS, EntryFilter

PAGE = 200
MAX_PAGES = 64

REGIME_SHORT = {
    "stayed_aligned": "stayed", "got_aligned": "got", "resists_alignment": "resists", "reversed": "reversed",
    "tie": "tie", "unscored": "unscored", None: "-",
}
REGIME_WORDS = {  # in full, where the width allows
    "stayed_aligned": "stayed aligned", "got_aligned": "got aligned", "resists_alignment": "resists alignment",
    "reversed": "reversed", "tie": "tie", "unscored": "unscored",
}
REGIME_STYLE = {
    "stayed_aligned": Style(color="green"), "got_aligned": Style(color="cyan"),
    "resists_alignment": Style(color="red", bold=True), "reversed": Style(color="yellow"),
    "tie": Style(color="magenta"), "unscored": Style(dim=True),
}


@dataclass(frozen=True)
class Column:
    key: str           # LIST_COLUMNS name (also the sort key)
    title: str
    width: int         # 0: takes the rest
    align: str = "left"
    min_total: int = 0  # shown only when the list is at least this wide


COLUMNS = [
    Column("selected", " ", 1),
    Column("pair_id", "pair", 8),
    Column("subset", "subset", 13),
    Column("split", "split", 5, min_total=110),
    Column("margin_pre", "m.pre", 7, "right"),
    Column("margin_post", "m.post", 7, "right"),
    Column("regime", "regime", 8),
    Column("gamma", "γ", 2),
    Column("theta", "θ", 6, "right", min_total=120),
    Column("heldout", "held", 4, min_total=110),
    Column("tags", "tags", 14),
    Column("prompt", "prompt", 0),
]
_IDX = {name: i for i, name in enumerate(LIST_COLUMNS)}
SORTABLE = {"pair_id", "subset", "split", "margin_pre", "margin_post", "regime", "gamma", "theta", "heldout",
            "tags", "prompt"}


def _fmt_num(v, nd=2) -> str:
    return "-" if v is None else f"{v:+.{nd}f}"


class EntryList(ScrollView, can_focus=True):
    """Every pair of the current filter, one line each."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="list.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="list.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="list.pageup"),
        Binding("pagedown,space", "page(1)", "Page down", show=False, id="list.pagedown"),
        Binding("home", "go_first", "First", show=False, id="list.first"),
        Binding("end,G", "go_last", "Last", show=False, id="list.last"),
        Binding("left,h", "column(-1)", "Column left", show=False, id="list.col_left"),
        Binding("right,l", "column(1)", "Column right", show=False, id="list.col_right"),
    ]

    DEFAULT_CSS = """
    EntryList { height: 1fr; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Changed(Message):
        """The list's contents or cursor moved (for the status line)."""

        def __init__(self, entry_list: "EntryList") -> None:
            super().__init__()
            self.entry_list = entry_list

    def __init__(self, order: Callable[[EntryFilter, tuple], list[str]],
                 rows: Callable[[list[str]], list[tuple]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._order = order
        self._rows = rows
        self._ids: list[str] = []
        self.filt = EntryFilter()
        self.sort: tuple[str, bool] = DEFAULT_SORT
        self.total = 0
        self.col = LIST_COLUMNS.index("margin_post")
        self._pages: OrderedDict[int, list[tuple]] = OrderedDict()
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)
        self._loaded = False
        self.lines_rendered = 0  # for benchmarks and tests: how many lines were drawn (cached or not)
        self.empty_columns: set[str] = set()  # columns no pair of the study has a value in (marked ∅)
        self.empty_message: list = []  # rich Texts shown where the rows would be when the list is empty
        self._empty_cache: tuple[int, list] | None = None

    def set_empty_message(self, lines: list) -> None:
        """What to show in place of rows when the filter holds none (why, and how to widen it)."""
        self.empty_message = list(lines)
        self._empty_cache = None
        self.refresh()

    def _empty_strips(self, width: int) -> list[Strip]:
        if self._empty_cache is None or self._empty_cache[0] != width:
            console = self.app.console
            strips = []
            for t in self.empty_message:
                for line in t.wrap(console, max(10, width - 2)):
                    line = Text(" ") + line
                    strips.append(Strip(list(line.render(console))).adjust_cell_length(width, self.rich_style))
            self._empty_cache = (width, strips)
        return self._empty_cache[1]

    # -- data --------------------------------------------------------------------------------------
    def load(self, filt: EntryFilter | None = None, sort: tuple[str, bool] | None = None, *,
             keep_cursor: bool = False) -> None:
        """(Re)query the count and drop cached pages; called on every filter or sort change.

        ``keep_cursor``: stay on the same pair if the new order still holds it, else on the same row."""
        before = self._ids[self.cursor] if keep_cursor and self.cursor < len(self._ids) else None
        if filt is not None:
            self.filt = filt
        if sort is not None:
            self.sort = sort
        self._pages.clear()
        self._strips.clear()
        self._ids = self._order(self.filt, self.sort)
        self.total = len(self._ids)
        self._loaded = True
        self.virtual_size = Size(self.size.width or 80, self.total)
        c = min(self.cursor, max(0, self.total - 1)) if keep_cursor else 0
        if before is not None and c < self.total and self._ids[c] != before:
            try:
                c = self._ids.index(before)
            except ValueError:
                pass
        if not keep_cursor:
            self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor = c
        self.refresh()
        self.post_message(self.Changed(self))

    def invalidate(self) -> None:
        """Rows changed (tags, selection) but not their order or number: refetch what is shown."""
        self._pages.clear()
        self._strips.clear()
        self.refresh()
        self.post_message(self.Changed(self))

    def index_of(self, pair_id: str) -> int | None:
        try:
            return self._ids.index(pair_id)
        except ValueError:
            return None

    def row(self, i: int) -> tuple | None:
        if i < 0 or i >= self.total:
            return None
        page = i // PAGE
        rows = self._pages.get(page)
        if rows is None:
            rows = self._rows(self._ids[page * PAGE:(page + 1) * PAGE])
            self._pages[page] = rows
            if len(self._pages) > MAX_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page)
        j = i - page * PAGE
        return rows[j] if j < len(rows) else None

    def value(self, i: int, key: str):
        r = self.row(i)
        return None if r is None else r[_IDX[key]]

    @property
    def current_pair(self) -> str | None:
        return self.value(self.cursor, "pair_id")

    # -- columns -----------------------------------------------------------------------------------
    def visible_columns(self, width: int | None = None) -> list[tuple[Column, int]]:
        width = width or self.size.width or 80
        cols = [c for c in COLUMNS if c.min_total <= width]
        fixed = sum(c.width for c in cols) + len(cols) - 1
        rest = max(6, width - fixed)
        return [(c, c.width or rest) for c in cols]

    @property
    def column_key(self) -> str:
        return LIST_COLUMNS[self.col]

    def header_text(self, width: int | None = None):
        from rich.text import Text

        t = Text(no_wrap=True, overflow="crop")
        for n, (c, w) in enumerate(self.visible_columns(width)):
            title = c.title
            if c.key == self.sort[0]:
                title = title + ("↓" if self.sort[1] else "↑")
            empty = c.key in self.empty_columns
            if empty:
                title = title + "∅"
            cell = title[-w:].rjust(w) if c.align == "right" else set_cell_size(title, w)
            style = "bold reverse" if c.key == self.column_key else ("dim" if empty else "bold")
            if n:
                t.append(" ")
            t.append(cell, style=style)
        return t

    # -- rendering ---------------------------------------------------------------------------------
    def _cells(self, r: tuple, width: int) -> list[tuple[str, Style | None]]:
        out = []
        for n, (c, w) in enumerate(self.visible_columns(width)):
            v = r[_IDX[c.key]]
            style = None
            if c.key == "selected":
                s = "●" if v else " "
                style = Style(color="yellow", bold=True) if v else None
            elif c.key == "pair_id":
                s = v[:8]
            elif c.key in ("margin_pre", "margin_post"):
                s = _fmt_num(v)
                style = Style(color="red") if v is not None and v < 0 else None
            elif c.key == "theta":
                s = "-" if v is None else f"{v:+.0f}"
            elif c.key == "regime":
                s = REGIME_SHORT.get(v, str(v))
                style = REGIME_STYLE.get(v)
            elif c.key == "heldout":
                s = "-" if v is None else ("held" if v else "in")
            elif c.key == "tags":
                s = v or ""
                style = Style(color="magenta") if v else None
            else:
                s = "" if v is None else str(v)
            s = s.strip() if c.key == "prompt" else s
            if c.align == "right":
                cell = s[-w:].rjust(w)
            else:
                cell = set_cell_size(s if len(s) <= w else s[: w - 1] + "…", w)
            if n:
                out.append((" ", None))
            out.append((cell, style))
        return out

    def render_line(self, y: int) -> Strip:
        self.lines_rendered += 1
        _, scroll_y = self.scroll_offset
        i = scroll_y + y
        width = self.size.width
        if self.total == 0 and self.empty_message:
            strips = self._empty_strips(width)
            return strips[y] if 0 <= y < len(strips) else Strip.blank(width, self.rich_style)
        if i >= self.total or i < 0:
            return Strip.blank(width, self.rich_style)
        is_cursor = i == self.cursor
        key = (i, width, is_cursor and self.has_focus, is_cursor)
        strip = self._strips.get(key)
        if strip is not None:
            return strip
        r = self.row(i)
        base = self.rich_style
        if r is None:
            strip = Strip.blank(width, base)
        else:
            if is_cursor:
                cur_style = Style(reverse=True, bold=True) if self.has_focus else Style(reverse=True)
                segs = [Segment(t, base + (s or Style()) + cur_style) for t, s in self._cells(r, width)]
            else:
                segs = [Segment(t, base + s if s else base) for t, s in self._cells(r, width)]
            strip = Strip(segs).adjust_cell_length(width, base)
        self._strips[key] = strip
        return strip

    # -- movement ----------------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        if self._scroll_cursor_into_view():
            self.refresh()
        else:  # only the two lines that changed
            self.refresh_line(old)
            self.refresh_line(new)
        self.post_message(self.Changed(self))

    def _scroll_cursor_into_view(self) -> bool:
        """Scroll so the cursor shows; True when it scrolled."""
        h = self.scrollable_content_region.height or self.size.height
        if h <= 0:
            return False
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
            return True
        if self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False, immediate=True)
            return True
        return False

    def move_to(self, i: int) -> None:
        if self.total == 0:
            return
        self.cursor = max(0, min(self.total - 1, i))

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        h = max(1, (self.scrollable_content_region.height or self.size.height) - 1)
        self.move_to(self.cursor + delta * h)
        top = max(0, min(self.total - h - 1, int(self.scroll_offset.y) + delta * h))
        if top <= self.cursor <= top + h:
            self.scroll_to(y=top, animate=False, immediate=True)

    def action_go_first(self) -> None:
        self.move_to(0)

    def action_go_last(self) -> None:
        self.move_to(self.total - 1)

    def action_column(self, delta: int) -> None:
        keys = [c.key for c, _ in self.visible_columns() if c.key in SORTABLE]
        cur = self.column_key if self.column_key in keys else keys[0]
        self.col = LIST_COLUMNS.index(keys[(keys.index(cur) + delta) % len(keys)])
        self.post_message(self.Changed(self))

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self.size.width, self.total)
        self._scroll_cursor_into_view()
        self.post_message(self.Changed(self))

    def on_focus(self) -> None:
        self._strips.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._strips.clear()
        self.refresh()
