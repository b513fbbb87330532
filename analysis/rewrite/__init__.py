"""Rewriters: rule-based perturbations, an LLM rewriter and the user's own text."""

from analysis.rewrite.base import RULE_PERTURBATIONS, RewriteError, RewriteResult, Rewriter
from analysis.rewrite.registry import make_rewriter

__all__ = ["RULE_PERTURBATIONS", "RewriteError", "RewriteResult", "Rewriter", "make_rewriter"]
