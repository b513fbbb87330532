"""A DataTable whose enter has an id and a description, so help lists it and a keymap can move it."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class ListTable(DataTable):
    """The coefficient and regime tables: enter shows the list of the pairs behind the row or cell."""

    BINDINGS = [Binding("enter", "select_cursor", "Show these pairs", id="table.show_pairs")]
