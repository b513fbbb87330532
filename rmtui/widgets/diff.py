"""Word-level differences between the chosen and the rejected response (difflib), as rich Text.

Words only on one side are shown in that side's colour *and* underlined, so the difference reads
without colour too.
"""

from __future__ import annotations

import difflib
import re

from rich.text import Text

_TOKEN = re.compile(r"\s+|[^\s]+")

CHOSEN_STYLE = "bold underline green"
REJECTED_STYLE = "bold underline red"


def tokens(s: str) -> list[str]:
    return _TOKEN.findall(s or "")


def word_diff(chosen: str, rejected: str) -> tuple[Text, Text, float]:
    """Two Texts with the words that differ highlighted, and the similarity ratio (0..1)."""
    a, b = tokens(chosen), tokens(rejected)
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    ta, tb = Text(), Text()
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        sa, sb = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            ta.append(sa)
            tb.append(sb)
        else:
            if sa:
                _append_marked(ta, sa, CHOSEN_STYLE)
            if sb:
                _append_marked(tb, sb, REJECTED_STYLE)
    return ta, tb, sm.ratio()


def _append_marked(t: Text, s: str, style: str) -> None:
    # keep whitespace unstyled so underlines mark words, not gaps at line ends
    for tok in tokens(s):
        t.append(tok, style=None if tok.isspace() else style)
