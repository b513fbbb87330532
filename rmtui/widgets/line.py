"""A one-line text widget that repaints without a layout pass (Static.update relayouts the screen).

A str is shown as it is, never parsed as markup: status lines carry user text (searches, tags, paths)
with brackets in it, and control characters (a search pasted with an escape) are shown visibly.
Pass a rich ``Text`` for styling."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from analysis.textsafe import visible_line


class Line(Widget):
    DEFAULT_CSS = "Line { height: 1; }"

    def __init__(self, text: str | Text = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text: str | Text = text
        self._plain = str(text)

    def set(self, text: str | Text) -> None:
        plain = text.plain if isinstance(text, Text) else text
        if plain == self._plain and not isinstance(text, Text):
            return
        self._text = text
        self._plain = plain
        # a line whose height is auto (the status) wraps: relayout only when its number of lines changes
        h = self.styles.height
        if h is not None and h.is_auto and self.size.width:
            from rich.cells import cell_len

            lines = max(1, -(-cell_len(plain) // self.size.width))
            if lines != getattr(self, "_lines", 1):
                self._lines = lines
                self.refresh(layout=True)
                return
        self.refresh()

    def render(self) -> Text:
        t = self._text
        return Text(visible_line(t)) if isinstance(t, str) else safe_text(t)

    @property
    def text(self) -> str:
        return self._plain


def safe_text(t: Text) -> Text:
    """A copy of ``t`` with every control character shown visibly (styles kept on the rest)."""
    from analysis.textsafe import UNSAFE

    if not UNSAFE.search(t.plain.replace("\n", "")):
        return t
    out = Text(style=t.style, justify=t.justify, overflow=t.overflow, no_wrap=t.no_wrap, end=t.end)
    last = 0
    for m in UNSAFE.finditer(t.plain):
        if m.group(0) == "\n":
            continue
        out.append_text(t[last:m.start()])
        out.append(visible_line(m.group(0)))
        last = m.end()
    out.append_text(t[last:])
    return out
