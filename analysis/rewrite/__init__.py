"""Rewriters: rule-based perturbations, an LLM rewriter and the user's own text.

Stage 4b, rewrite: the rewriters and the robustness experiment (``experiment``: rewrite a seeded sample,
rescore, refeaturize, fit the robustness LPM). May import scoring, models, datasets, features, llm, store,
metrics and the shared top modules; never fit, report or pipeline.
"""

from analysis.rewrite.base import RULE_PERTURBATIONS, RewriteError, RewriteResult, Rewriter
from analysis.rewrite.registry import make_rewriter

__all__ = ["RULE_PERTURBATIONS", "RewriteError", "RewriteResult", "Rewriter", "make_rewriter"]
