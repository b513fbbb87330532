"""A one-line text widget that repaints without a layout pass (Static.update relayouts the screen).

A str is shown as it is, never parsed as markup: status lines carry user text (searches, tags, paths)
with brackets in it. Pass a rich ``Text`` for styling."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


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
        return Text(t) if isinstance(t, str) else t

    @property
    def text(self) -> str:
        return self._plain
