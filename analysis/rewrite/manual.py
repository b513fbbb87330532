"""The manual rewriter: the user's own text replaces the last response."""

from __future__ import annotations

import numpy as np

from analysis.errors import RmtuiError
from analysis.hashing import digest
from analysis.rewrite.base import RewriteResult, Rewriter


class ManualRewriter(Rewriter):
    name = "manual"
    version = "1"

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    @property
    def params(self) -> dict:
        # the text itself lives in rewrites.new_response; the id only needs its digest
        return {"text_digest": digest("manual", self.text)} if self.text is not None else {}

    def rewrite(self, context: str, response: str, rng: np.random.Generator | None = None) -> RewriteResult:
        if self.text is None:
            raise RmtuiError("the manual rewriter needs the new text (text=...)", "Rewrite")
        new = self.text.strip()
        if not new:
            raise RmtuiError("the new response is empty", "Rewrite")
        notes = "unchanged" if new == response.strip() else ""
        return RewriteResult(new, dict(self.params), notes)
