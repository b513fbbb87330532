"""The virtual entry list: a ScrollView that renders only the visible lines.

On a filter or sort change the list asks DuckDB once for the pair ids in list order (one Arrow array:
a million ids in about 0.6 s, built without the GIL), in a thread worker that posts the ids back with
the cursor's page of rows (the first load, before the list is shown, runs at once); rows are then
fetched in pages of ``PAGE`` by slicing that order (one small query per page, about 30 ms, at any
depth), kept in an LRU of pages. Drawing never queries: a line whose page is not cached shows " …"
while a worker fetches the page, and is drawn again when it arrives. Rendered lines are kept in an LRU
of strips (as toolong does). Only visible lines are ever rendered.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import work
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache

from analysis.textsafe import visible_line
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from analysis.store.entries import LIST_COLUMNS
from analysis.store.filters import DEFAULT_SORT, EntryFilter

from .ids import IdOrder
from .names import short_names  # noqa: F401  (imported from here by the screens and tests)

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
    wide_title: str = ""  # the full name, where the list is wide enough for every column in full
    wide_width: int = 0


PINNED = 2  # selected and pair id stay on screen while the other columns scroll (as VisiData's key columns)
COLUMNS = [
    Column("selected", " ", 1),
    Column("pair_id", "pair", 8),
    Column("subset", "subset", 13),
    Column("margin_pre", "m.pre", 7, "right", "margin pre", 11),
    Column("margin_post", "m.post", 7, "right", "margin post", 12),
    Column("regime", "regime", 8, "left", "regime", 17),
    Column("gamma", "γ", 2, "left", "gamma", 5),
    Column("tags", "tags", 4),
    Column("votes", "votes", 5, "right", "votes", 5),  # human votes a:b[:tie]; only when the study has votes
    Column("prompt", "prompt", 0),
    Column("theta", "θ", 5, "right", "theta", 5),
    Column("heldout", "held", 4, "left", "held out", 8),
    Column("split", "split", 5),
]
PROMPT_MIN = 16   # the prompt column's width when other columns follow it on screen
_IDX = {name: i for i, name in enumerate(LIST_COLUMNS)}
SORTABLE = {"pair_id", "subset", "split", "margin_pre", "margin_post", "regime", "gamma", "theta", "heldout",
            "tags", "prompt", "votes"}
HUMAN_STYLE = {"split": Style(color="yellow"), "tie": Style(color="cyan")}
REGIME_MID = {**REGIME_WORDS, "resists_alignment": "resists"}
REGIME_SHORT_80 = {**REGIME_SHORT, "got_aligned": "got al.", "stayed_aligned": "stayed"}


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

    class Ordered(Message):
        """A reload's pair ids, the cursor's row in them and that row's page of rows, from its worker."""

        def __init__(self, generation: int, ids: IdOrder | None, error: BaseException | None,
                     keep_cursor: bool, cursor: int = 0, page: tuple[int, list] | None = None) -> None:
            super().__init__()
            self.generation, self.ids, self.error = generation, ids, error
            self.keep_cursor, self.cursor, self.page = keep_cursor, cursor, page

    class PageReady(Message):
        """A page of rows fetched by a worker for lines drawn meanwhile as placeholders."""

        def __init__(self, generation: int, page: int, rows: list | None) -> None:
            super().__init__()
            self.generation, self.page, self.rows = generation, page, rows

    def __init__(self, order: Callable[[EntryFilter, tuple], list[str]],
                 rows: Callable[[list[str]], list[tuple]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._order = order
        self._rows = rows
        self._ids = IdOrder()
        self._pending_pages: set[int] = set()  # pages a worker is fetching for the screen
        self.filt = EntryFilter()
        self.sort: tuple[str, bool] = DEFAULT_SORT
        self.total = 0
        self.col = LIST_COLUMNS.index("margin_post")
        self._pages: OrderedDict[int, list[tuple]] = OrderedDict()
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)
        self._loaded = False
        self._generation = 0  # of the latest load: a slower earlier reload's ids are dropped
        # of the ids and rows shown: a page fetched for other ids or older rows (a worker asked before a
        # reload arrived, or before the rows changed) is dropped
        self._page_gen = 0
        self.on_load_error: Callable[[BaseException], None] | None = None
        self.lines_rendered = 0  # for benchmarks and tests: lines drawn (cached or not), placeholders not counted
        self.hidden: set[str] = {"votes"}  # columns with nothing to show in this study (the screen decides)
        self.empty_columns: set[str] = set()  # columns no pair of the study has a value in (marked ∅)
        self.hscroll = 0  # the first scrolling column on screen (an index into COLUMNS[PINNED:])
        self.tags_width = 4
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
             keep_cursor: bool = False, now: bool = False) -> None:
        """(Re)query the pair ids and drop cached pages; called on every filter or sort change.

        The query runs in a thread worker (``now``: here, for the first load); the list shows the
        new ids when they arrive. ``keep_cursor``: stay on the same pair if the new order still
        holds it, else on the same row."""
        before = self._ids.at(self.cursor) if keep_cursor and self.cursor < len(self._ids) else None
        if filt is not None:
            self.filt = filt
        if sort is not None:
            self.sort = sort
        self._generation += 1
        if now:
            ids, c, page = self._ordered(self.filt, self.sort, keep_cursor, self.cursor, before)
            self._apply(ids, keep_cursor, c, page)
        else:
            self._order_in_worker(self._generation, self.filt, self.sort, keep_cursor, self.cursor, before)

    def _ordered(self, filt: EntryFilter, sort: tuple[str, bool], keep_cursor: bool, cursor: int,
                 before: str | None) -> tuple[IdOrder, int, tuple[int, list] | None]:
        """The new ids, the cursor's row in them (``keep_cursor``: on the same pair if the new order
        still holds it, else on the same row) and that row's page of rows."""
        ids = IdOrder(self._order(filt, sort))
        total = len(ids)
        c = min(cursor, max(0, total - 1)) if keep_cursor else 0
        if before is not None and c < total and ids.at(c) != before:
            found = ids.index(before)
            if found is not None:
                c = found
        if not total:
            return ids, c, None
        p = c // PAGE
        return ids, c, (p, self._rows(ids.page(p * PAGE, (p + 1) * PAGE)))

    @work(thread=True, exit_on_error=False, group="list-order")
    def _order_in_worker(self, generation: int, filt: EntryFilter, sort: tuple[str, bool], keep_cursor: bool,
                         cursor: int, before: str | None) -> None:
        try:
            ids, c, page = self._ordered(filt, sort, keep_cursor, cursor, before)
            error = None
        except Exception as e:  # shown by the screen, never a traceback
            ids, c, page, error = None, 0, None, e
        self.post_message(self.Ordered(generation, ids, error, keep_cursor, c, page))

    def on_entry_list_ordered(self, message: "EntryList.Ordered") -> None:
        message.stop()
        if message.generation != self._generation:
            return
        if message.error is not None:
            if self.on_load_error is not None:
                self.on_load_error(message.error)
            return
        self._apply(message.ids or IdOrder(), message.keep_cursor, message.cursor, message.page)

    def _apply(self, ids: IdOrder, keep_cursor: bool, c: int, page: tuple[int, list] | None) -> None:
        self._page_gen += 1
        self._pages.clear()
        self._pending_pages.clear()
        self._strips.clear()
        if page is not None:
            self._pages[page[0]] = page[1]
        self._ids = ids
        self.total = len(self._ids)
        self._loaded = True
        self.virtual_size = Size(self.size.width or 80, self.total)
        if not keep_cursor:
            self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor = c
        self.refresh()
        self.post_message(self.Changed(self))

    def invalidate(self) -> None:
        """Rows changed (tags, selection) but not their order or number: refetch what is shown."""
        self._page_gen += 1
        self._pending_pages.clear()
        self._pages.clear()
        self._strips.clear()
        self.refresh()
        self.post_message(self.Changed(self))

    def index_of(self, pair_id: str) -> int | None:
        return self._ids.index(pair_id)

    def _keep_page(self, page: int, rows: list) -> None:
        self._pages[page] = rows
        if len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)

    def row(self, i: int, *, fetch: bool = True) -> tuple | None:
        """Row ``i`` (``LIST_COLUMNS`` order); its page is fetched here if not cached, or, with
        ``fetch=False`` (drawing), asked of a worker while this returns None."""
        if i < 0 or i >= self.total:
            return None
        page = i // PAGE
        rows = self._pages.get(page)
        if rows is None:
            if not fetch:
                if page not in self._pending_pages:
                    self._pending_pages.add(page)
                    self._page_in_worker(self._page_gen, page, self._ids.page(page * PAGE, (page + 1) * PAGE))
                return None
            rows = self._rows(self._ids.page(page * PAGE, (page + 1) * PAGE))
            self._keep_page(page, rows)
        else:
            self._pages.move_to_end(page)
        j = i - page * PAGE
        return rows[j] if j < len(rows) else None

    @work(thread=True, exit_on_error=False, group="list-page")
    def _page_in_worker(self, generation: int, page: int, ids: list[str]) -> None:
        try:
            rows = self._rows(ids)
        except Exception:  # drawn again (and asked again) on the next refresh
            rows = None
        self.post_message(self.PageReady(generation, page, rows))

    def on_entry_list_page_ready(self, message: "EntryList.PageReady") -> None:
        message.stop()
        if message.generation != self._page_gen:
            return
        self._pending_pages.discard(message.page)
        if message.rows is None:
            return
        self._keep_page(message.page, message.rows)
        self._strips.clear()
        self.refresh()

    def value(self, i: int, key: str):
        r = self.row(i)
        return None if r is None else r[_IDX[key]]

    @property
    def current_pair(self) -> str | None:
        return self.value(self.cursor, "pair_id")

    # -- columns -----------------------------------------------------------------------------------
    def configure_columns(self, subsets: list[str], tags: list[str]) -> None:
        """Fit the subset and tags columns to the study's values (the longest, up to a limit)."""
        self._subsets = list(subsets)
        self._subset_cache: dict[int, tuple[int, dict[str, str]]] = {}
        self.tags_width = max(4, min(14, max((len(t) for t in tags), default=4)))
        self._strips.clear()
        self.refresh()

    def _subset_layout(self, width: int) -> tuple[int, dict[str, str]]:
        cache = getattr(self, "_subset_cache", {})
        if width not in cache:
            subsets = getattr(self, "_subsets", [])
            longest = max((len(x) for x in subsets), default=6)
            w = max(6, min(longest, 13 if width < 110 else 26))
            cache[width] = (w, short_names(subsets, w))
            self._subset_cache = cache
        return cache[width]

    @property
    def columns(self) -> list[Column]:
        """The list's columns in order, less those the study has nothing for (``hidden``)."""
        return [c for c in COLUMNS if c.key not in self.hidden]

    def content_width(self) -> int:
        """The width rows are drawn in (the scrollbar takes the rest)."""
        return self.scrollable_content_region.width or self.size.width or 80

    def _wide(self, width: int) -> bool:
        """Every column in full fits with room for the prompt."""
        cols = self.columns
        need = sum(self._width(c, True, width) for c in cols if c.width) + len(cols) - 1
        return width - need >= 40

    def _width(self, c: Column, wide: bool, width: int = 80) -> int:
        if c.key == "subset":
            return self._subset_layout(width)[0]
        if c.key == "tags":
            return self.tags_width
        if c.key == "regime" and not wide and width >= 110:
            return 14  # "stayed aligned", "got aligned", "resists", "reversed"
        return (c.wide_width or c.width) if wide else c.width

    def layout(self, width: int | None = None) -> tuple[list[tuple[Column, int]], bool, bool]:
        """The columns on screen with their widths, and whether more columns are off screen to the left
        and to the right. The pinned columns always show; the focused column is scrolled into view."""
        width = width or self.content_width()
        wide = self._wide(width)
        pinned = [(c, self._width(c, wide, width)) for c in self.columns[:PINNED]]
        rest = self.columns[PINNED:]
        focus = next((i for i, c in enumerate(rest) if c.key == self.column_key), None)
        start = min(self.hscroll, len(rest) - 1)
        if focus is not None and focus < start:
            start = focus
        while True:
            used = sum(w for _, w in pinned) + len(pinned)
            shown: list[tuple[Column, int]] = []
            for j, c in enumerate(rest[start:], start):
                left = width - used
                if c.width == 0:  # the prompt: the rest of the line after what follows it, if that fits,
                    later = sum(self._width(x, wide, width) + 1 for x in rest[j + 1:])  # else the whole rest
                    w = left - later if left - later >= PROMPT_MIN else left
                    if w < 6:
                        break
                    shown.append((c, w))
                    used += w + 1
                    continue
                w = self._width(c, wide, width)
                if w > left:
                    break
                shown.append((c, w))
                used += w + 1
            keys = [c.key for c, _ in shown]
            if focus is None or rest[focus].key in keys or start >= len(rest) - 1:
                break
            start += 1  # scroll right until the focused column shows
        self.hscroll = start
        more_right = start + len(shown) < len(rest)
        return pinned + shown, start > 0, more_right

    def visible_columns(self, width: int | None = None) -> list[tuple[Column, int]]:
        return self.layout(width)[0]

    @property
    def column_key(self) -> str:
        return LIST_COLUMNS[self.col]

    def header_text(self, width: int | None = None):
        from rich.text import Text

        width = width or self.content_width()
        cols, more_left, more_right = self.layout(width)
        wide = self._wide(width)
        t = Text(no_wrap=True, overflow="crop")
        for n, (c, w) in enumerate(cols):
            title = (c.wide_title or c.title) if wide else c.title
            if c.key == "selected" and more_left:
                title = "‹"
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
        if more_right:
            t.truncate(width - 1, pad=True)
            t.append("›", style="bold reverse")
        return t

    def columns_note(self, width: int | None = None) -> str:
        """'columns 3-8 of 12 ‹h l›' when some are off screen, else ''."""
        cols, more_left, more_right = self.layout(width)
        if not (more_left or more_right):
            return ""
        keys = [c.key for c in self.columns]
        first, last = keys.index(cols[PINNED][0].key) + 1, keys.index(cols[-1][0].key) + 1
        return (f"columns {first}-{last} of {len(keys)}" + (" · h ‹" if more_left else "")
                + (" · l ›" if more_right else ""))

    # -- rendering ---------------------------------------------------------------------------------
    def _cells(self, r: tuple, width: int) -> list[tuple[str, Style | None]]:
        out = []
        wide = self._wide(width)
        subset_names = self._subset_layout(width)[1]
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
                words = REGIME_WORDS if wide else (REGIME_MID if w >= 14 else REGIME_SHORT_80)
                s = words.get(v, "-" if v is None else str(v))
                style = REGIME_STYLE.get(v)
            elif c.key == "heldout":
                s = "-" if v is None else ("held" if v else "in")
            elif c.key == "subset":
                s = "" if v is None else subset_names.get(v, str(v))
            elif c.key == "tags":
                s = v or ""
                style = Style(color="magenta") if v else None
            elif c.key == "votes":
                s = v or ""
                style = HUMAN_STYLE.get(r[_IDX["human"]])
            else:
                s = "" if v is None else str(v)
            s = visible_line(s.strip() if c.key == "prompt" else s)  # data: escapes shown, never sent
            if c.align == "right":
                cell = s[-w:].rjust(w)
            else:
                cell = set_cell_size(s if len(s) <= w else s[: w - 1] + "…", w)
            if n:
                out.append((" ", None))
            out.append((cell, style))
        return out

    def render_line(self, y: int) -> Strip:
        _, scroll_y = self.scroll_offset
        i = scroll_y + y
        width = self.content_width()
        if i >= self.total or i < 0 or self.total == 0:
            self.lines_rendered += 1  # drawn (blank or the empty message), not waiting for rows
        if self.total == 0 and self.empty_message:
            strips = self._empty_strips(width)
            return strips[y] if 0 <= y < len(strips) else Strip.blank(width, self.rich_style)
        if i >= self.total or i < 0:
            return Strip.blank(width, self.rich_style)
        is_cursor = i == self.cursor
        key = (i, width, is_cursor and self.has_focus, is_cursor)
        strip = self._strips.get(key)
        if strip is not None:
            self.lines_rendered += 1
            return strip
        r = self.row(i, fetch=False)
        base = self.rich_style
        if r is None:  # its page is on its way (a worker): a placeholder now, the row when it comes
            return Strip([Segment(" …", base + Style(dim=True))]).adjust_cell_length(width, base)
        self.lines_rendered += 1
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
        keys = [c.key for c in self.columns if c.key in SORTABLE]  # every column, on screen or not: it scrolls
        cur = self.column_key if self.column_key in keys else keys[0]
        i = keys.index(cur) + delta
        if not 0 <= i < len(keys):  # at an end: stay (VisiData does not wrap either)
            return
        self.col = LIST_COLUMNS.index(keys[i])
        hs = self.hscroll
        self.layout()
        if self.hscroll != hs:
            self._strips.clear()
            self.refresh()
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
