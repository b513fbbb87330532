"""Content hashes: texts are keyed by what they say, so identical texts are scored once."""

from __future__ import annotations

import hashlib

_SEP = "\x1f"  # unit separator: cannot be confused with text content boundaries


def digest(*parts: str, size: int = 10) -> str:
    h = hashlib.blake2b(digest_size=size)
    for i, p in enumerate(parts):
        if i:
            h.update(_SEP.encode())
        h.update(p.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def text_id(context: str, response: str) -> str:
    """Stable id of one text (a conversation context plus a final response)."""
    return digest("text", context, response)


def pair_id(subset: str, split: str, source_row: int, chosen_text: str, rejected_text: str) -> str:
    """Stable id of one pair: its content plus where it sits in its source."""
    return digest("pair", subset, split, str(source_row), chosen_text, rejected_text)
