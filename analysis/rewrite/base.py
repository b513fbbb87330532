"""The rewriter interface: what every rewriter (rules, LLM, manual) offers (specs: registry.py).

A rewriter changes the *last response* of a text and nothing else; the context is kept. Each
rewrite records its origin (rewriter name, version, params as JSON, experiment id) in the study's
``rewrites`` table, so any number can be traced back to the rule or prompt that produced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.errors import RmtuiError

#: the rule-based perturbations, each moving one spoiler feature while keeping the content
RULE_PERTURBATIONS: list[str] = [
    "more_positive",
    "more_negative",
    "more_formal",
    "plainer",
    "hedging",
    "apology",
    "polite_preamble",
    "lengthen",
    "list_format",
    "typo_noise",
]


class RewriteError(RmtuiError):
    """A rewriter could not produce an acceptable rewrite (reasons are listed in the message)."""

    title = "Rewrite"

    def __init__(self, message: str, reasons: list[str] | None = None, title: str | None = None) -> None:
        super().__init__(message, title)
        self.reasons = list(reasons or [])


@dataclass
class RewriteResult:
    """One rewrite: the new last response, the params that produced it (JSON-able), and notes
    (e.g. ``"no contraction or casual word to change"``: the rule had nothing to do)."""

    new_response: str
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


class Rewriter:
    """Base class: subclasses set ``name`` and ``version`` and implement :meth:`rewrite`."""

    name: str = ""
    version: str = "1"

    @property
    def params(self) -> dict[str, Any]:
        """The settings that identify this rewriter (part of every rewrite id)."""
        return {}

    @property
    def spec(self) -> str:
        return self.name

    def rewrite(self, context: str, response: str, rng: np.random.Generator) -> RewriteResult:
        raise NotImplementedError

    def params_json(self) -> str:
        return json.dumps({"version": self.version, **self.params}, sort_keys=True, default=str)
