"""One sanitizer for everything a dataset puts in front of a person: terminal, Markdown, HTML.

A preference dataset is untrusted (scraped, crowd- and model-written). Its texts and the names derived
from it (subset, split, tags, model names) can hold terminal control sequences (``\\x1b[2J`` wipes the
screen, ``\\x1b]0;TITLE\\x07`` sets the window title) and bidi overrides that reorder what is shown.
:func:`visible` turns each such character into something that is *seen* and does nothing:

- C0 controls (U+0000..U+001F) other than newline and tab, and DEL, become the Unicode control
  pictures (``\\x1b`` -> ``␛``, ``\\x07`` -> ``␇``, DEL -> ``␡``): one column wide, so tables keep their
  alignment. ``\\r\\n`` is shown as ``\\n``; a lone ``\\r`` (it moves the cursor back and lets a text
  overwrite itself) becomes ``␍``.
- C1 controls (U+0080..U+009F, ``\\x9b`` is a one-byte CSI on some terminals) become ``\\x9b``-style
  escapes.
- Bidi embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069) and the line/paragraph
  separators U+2028/U+2029 become ``\\u202e``-style escapes.

Newline and tab are kept (texts are multi-line); :func:`visible_line` also shows them, for one-line
places (names, table cells, excerpts). The stored data is never changed: JSONL and Parquet exports
stay byte-exact (their formats escape control characters); this is for display only.

No markup is parsed or produced here; callers that hand text to Rich or Textual pass it as a ``Text``
(never as a markup string).
"""

from __future__ import annotations

import re

__all__ = ["visible", "visible_line", "has_controls", "UNSAFE"]

_PICTURES = {i: chr(0x2400 + i) for i in range(0x20)}
_PICTURES[0x7F] = "\u2421"  # ␡

# what is replaced: C0 (all, newline/tab/CR handled below), DEL, C1, bidi controls, LS/PS
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = UNSAFE  # the same set; visible_line also replaces \n and \t


def _sub(m: re.Match, keep_layout: bool) -> str:
    c = m.group(0)
    o = ord(c)
    if keep_layout and c in "\n\t":
        return c
    if o < 0x20 or o == 0x7F:
        return _PICTURES[o]
    if o <= 0x9F:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def visible(s: object) -> str:
    """``s`` as text with every control character shown visibly (newline and tab kept)."""
    if s is None:
        return ""
    s = s if isinstance(s, str) else str(s)
    if not UNSAFE.search(s):
        return s
    s = s.replace("\r\n", "\n")
    return UNSAFE.sub(lambda m: _sub(m, True), s)


def visible_line(s: object) -> str:
    """Like :func:`visible`, for one-line places: newline and tab shown too (``␊``, ``␉``)."""
    if s is None:
        return ""
    s = s if isinstance(s, str) else str(s)
    if not UNSAFE.search(s):
        return s
    return UNSAFE.sub(lambda m: _sub(m, False), s)


def has_controls(s: str) -> bool:
    """Whether ``s`` holds a character :func:`visible` would replace (newline and tab aside)."""
    return bool(UNSAFE.search(s.replace("\n", "").replace("\t", "")))


# -- Markdown/HTML and figure labels (issue 25): data never reaches a document raw -----------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#!])")


def md_escape(s: object, keep: str = "") -> str:
    """``s`` as one line of Markdown text that renders literally: control characters shown
    (:func:`visible_line`), and every character Markdown or HTML would read backslash-escaped
    (CommonMark: any ASCII punctuation may be), so ``<script>`` is ``\\<script\\>``, ``|`` cannot
    end a table cell and a backtick cannot open code. ``keep``: characters left as they are (the
    report's own ``**`` in its findings)."""
    s = visible_line(s)
    if keep:
        return _MD_SPECIAL.sub(lambda m: m.group(1) if m.group(1) in keep else "\\" + m.group(1), s)
    return _MD_SPECIAL.sub(r"\\\1", s)


def figure_label(s: object, limit: int = 40) -> str:
    """A data string as a figure label: control characters as ``\\x1b`` / ``\\u202e`` (plain ASCII, so
    no font lacks a glyph and no library warning carries the raw character), clipped to ``limit``."""
    s = "" if s is None else (s if isinstance(s, str) else str(s))
    s = UNSAFE.sub(lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) <= 0xFF else f"\\u{ord(m.group(0)):04x}", s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def check_utf8_name(path: object, what: str = "file") -> None:
    """Refuse a path whose name is not valid UTF-8 (Python holds its bad bytes as surrogates, which
    the study cannot store: DuckDB said "Python Conversion Failure ... surrogate"), naming the byte
    and what to do."""
    import os

    s = os.fspath(path) if not isinstance(path, str) else path
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        from analysis.errors import InputError

        raw = os.fsencode(s)
        shown = raw.decode("utf-8", "backslashreplace")
        bad = s[e.start]
        byte = f"0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else repr(bad)
        raise InputError(f"{visible_line(shown)}: the {what} name is not valid UTF-8 (byte {byte} at position "
                         f"{e.start}); rename it to a UTF-8 name (mv) and run the command again", "Bad file name") from None
