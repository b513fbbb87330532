"""From a rewriter spec to a rewriter: the one place that knows every implementation.

To add a rewriter: subclass :class:`~analysis.rewrite.base.Rewriter` in a module of its own and give
its spec a branch in :func:`make_rewriter`.
"""

from __future__ import annotations

from typing import Any

from analysis.errors import RmtuiError
from analysis.rewrite.base import Rewriter


def make_rewriter(spec: str, **params: Any) -> Rewriter:
    """Build a rewriter: ``"rules"`` (one perturbation drawn per text, seeded), ``"rules:NAME"``
    (one of :data:`RULE_PERTURBATIONS`), ``"llm"`` (``endpoint=``/``base_url=``, ``model=``,
    ``target=``), ``"manual"`` (``text=``)."""
    spec = (spec or "").strip()
    if spec == "rules" or spec.startswith("rules:"):
        from analysis.rewrite.rules import RuleRewriter

        pert = params.pop("perturbation", None)
        if spec.startswith("rules:"):
            pert = spec[6:]
        return RuleRewriter(pert or None, **params)
    if spec == "llm" or spec.startswith("llm:"):
        from analysis.rewrite.llm_rewriter import LLMRewriter

        if spec.startswith("llm:") and not params.get("model"):
            params["model"] = spec[4:]
        if "endpoint" in params:
            params.setdefault("base_url", params.pop("endpoint"))
        pert = params.pop("perturbation", None)
        if pert and not params.get("target"):
            params["target"] = pert
        return LLMRewriter(**params)
    if spec == "manual":
        from analysis.rewrite.manual import ManualRewriter

        params.pop("perturbation", None)
        return ManualRewriter(**params)
    raise RmtuiError(f"unknown rewriter {spec!r}: use rules, rules:PERTURBATION, llm or manual", "Rewriter")
